"""The look-ahead and warm-up check: a planted ``shift(-1)`` and too-short warm-ups are found and named
(candle, value, both readings); every built-in strategy and every shipped LeviLang file passes; the
command's exit codes (0 clean, 1 found, 2 bad input)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.src.core.config import StrategyConfig
from backend.src.core.settings import REPO_ROOT
from backend.src.core.types import Candle
from backend.src.market.candles import SyntheticSource
from backend.src.trading.check import check_strategy, main, maker
from backend.src.trading.factory import REGISTRY, build_strategy

PLANTED = '''
import numpy as np
from pydantic import BaseModel, ConfigDict
from backend.src.trading.api import Signal, Strategy, VectorStrategy


class Peek(VectorStrategy):
    """Long when the next close is higher: the classic look-ahead."""
    warmup_candles = 30

    def populate(self, frame):
        frame["sma"] = frame["close"].rolling(20).mean()
        frame["target"] = (frame["close"].shift(-1) > frame["close"]).astype(float)
        return frame


class Honest(VectorStrategy):
    warmup_candles = 30

    def populate(self, frame):
        frame["sma"] = frame["close"].rolling(20).mean()
        frame["target"] = (frame["close"] > frame["sma"]).astype(float)
        return frame


class ShortEma(VectorStrategy):
    """An EMA of span 50 warmed on 10 candles."""
    warmup_candles = 10

    def populate(self, frame):
        frame["ema"] = frame["close"].ewm(span=50, adjust=False).mean()
        frame["target"] = np.where(frame["close"] > frame["ema"], 1.0, 0.0)
        return frame


class PeekIndicator(VectorStrategy):
    """An honest target beside an exposed value normalised by the whole frame's mean: look-ahead in a value."""
    warmup_candles = 30

    def populate(self, frame):
        frame["rel"] = frame["close"] / frame["close"].mean()
        frame["target"] = (frame["close"] > frame["close"].rolling(20).mean()).astype(float)
        return frame


class Boom(Strategy):
    def on_candle(self, candle):
        raise KeyError("a bug")


class CumVolume(Strategy):
    """An event-driven strategy whose exposed value depends on all history (a running sum)."""
    warmup_candles = 5

    def __init__(self):
        self.total = 0.0

    def on_candle(self, candle):
        self.total += candle.volume
        return Signal(0.0, 0.5, 0.0, "flat")

    def indicators(self):
        return {"cum_volume": self.total}
'''


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("plugins")
    (d / "plug_planted.py").write_text(PLANTED)
    sys.path.insert(0, str(d))
    yield str(d)
    sys.path.remove(str(d))
    sys.modules.pop("plug_planted", None)


def candles(n: int, minutes: int = 60, seed: int = 5) -> list[Candle]:
    return SyntheticSource("BTCUSDT", seed=seed, interval_s=minutes * 60, timeframe=f"{minutes}m",
                           annual_volatility=0.9, price=30_000.0, now=1_700_000_000 + n * minutes * 60).warmup(n)


def write_csv(path: Path, cs: list[Candle]) -> Path:
    path.write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"{c.ts},{c.open!r},{c.high!r},{c.low!r},{c.close!r},{c.volume!r}\n" for c in cs))
    return path


def test_a_planted_shift_minus_one_is_found_and_named(planted: str) -> None:
    cs = candles(600)
    rep = check_strategy(maker("plug_planted:Peek", {}), cs)
    look = [f for f in rep.findings if f.kind == "look-ahead"]
    assert look, rep.summary()
    first = look[0]
    # at a cut the last candle has no next close: its decision changes when the next candle is added
    assert first.value == "target" and first.other is not None and first.reference != first.other
    assert f"(#{first.index}, ts {cs[first.index].ts})" in first.line() and "with the file cut after candle" in \
        first.line()
    assert check_strategy(maker("plug_planted:Honest", {}), cs).ok
    value = [f for f in check_strategy(maker("plug_planted:PeekIndicator", {}), cs).findings if f.kind == "look-ahead"]
    assert value and value[0].value == "rel", "an exposed value that reads later candles is look-ahead too"


@pytest.mark.parametrize(("spec", "value"), [("plug_planted:ShortEma", "ema"),
                                            ("plug_planted:CumVolume", "cum_volume")])
def test_a_too_short_warmup_is_found_and_named(planted: str, spec: str, value: str) -> None:
    rep = check_strategy(maker(spec, {}), candles(600))
    warm = [f for f in rep.findings if f.kind == "warm-up"]
    assert warm and not [f for f in rep.findings if f.kind == "look-ahead"], rep.lines()
    assert warm[0].value == value and "after a restart at candle" in warm[0].line(), warm[0].line()
    assert any("warmup_candles is" in line for line in rep.lines())


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_built_in_strategy_passes(name: str) -> None:
    params = {"lookback": 48, "vol_window": 24} if name == "ts_momentum" else {}
    rep = check_strategy(lambda: build_strategy(StrategyConfig(name=name, params=params)), candles(700))
    assert rep.ok, rep.lines()


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "backend" / "strategies").glob("*.levi.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_levilang_file_passes(path: Path) -> None:
    make = maker(str(path), {})
    warm = make().warmup_candles
    minutes = 60 if "timeframe: 1h" in path.read_text() else 5
    rep = check_strategy(make, candles(2 * warm + 400, minutes), cuts=4, restarts=4, span=150)
    assert rep.ok, rep.lines()
    assert rep.compared > 1000


def test_the_example_plugins_pass() -> None:
    for spec in ("levibot_examples.breakout:ChannelBreakout", "levibot_examples.zscore:ZScoreReversion"):
        assert check_strategy(maker(spec, {"lookback": 24}), candles(500)).ok, spec


def test_the_command_exits_0_1_and_2(planted: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_csv(tmp_path / "BTC_USDT-1h.csv", candles(500))
    assert main(["plug_planted:Honest", "--ohlcv", str(f)]) == 0
    assert capsys.readouterr().out.startswith("OK: no look-ahead")
    assert main(["plug_planted:Peek", "--ohlcv", str(f)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("look-ahead: candle ") and out[-1].startswith("FOUND")
    for argv, msg in ((["plug_planted:Nope", "--ohlcv", str(f)], "strategy.python: plug_planted:Nope: Nope not found"),
                      (["sma_crossover", "--ohlcv", str(tmp_path / "none.csv")], "--ohlcv: "),
                      (["sma_crossover", "--ohlcv", str(f), "--params", "[1]"], "--params: a JSON object"),
                      (["sma_crossover", "--ohlcv", str(f), "--params", '{"slow": 400}'], "--ohlcv: 500 candles"),
                      (["no_such", "--ohlcv", str(f)], "strategy.name: unknown strategy 'no_such'"),
                      (["plug_planted:Boom", "--ohlcv", str(f)], "plug_planted:Boom raised KeyError: 'a bug'")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err


def test_the_real_command_names_the_candle(planted: str, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "BTC_USDT-1h.csv", candles(400))
    res = subprocess.run([sys.executable, "-m", "backend.src.trading.check", "plug_planted:Peek", "--ohlcv", str(f)],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False,
                         env={"PYTHONPATH": f"{REPO_ROOT}:{planted}", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 1, res.stderr
    assert "look-ahead: candle" in res.stdout and "target = " in res.stdout


def test_the_backtester_refuses_a_plugin_that_looks_ahead_unless_told_not_to_check(planted: str,
                                                                                    tmp_path: Path) -> None:
    d = tmp_path / "candles"
    d.mkdir()
    write_csv(d / "BTC_USDT-1h.csv", candles(500))
    env = {"PYTHONPATH": f"{REPO_ROOT}:{planted}", "PATH": "/usr/bin:/bin", "LEVIBOT_DATA_DIR": str(tmp_path / "data")}

    def backtest(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "backend.ml.research.backtest", "--ohlcv-dir", str(d),
                               "--jobs", "1", "--out", str(tmp_path / "out"), *extra], capture_output=True, text=True,
                              cwd=REPO_ROOT, timeout=120, check=False, env=env)

    refused = backtest("--strategy", "plug_planted:Peek")
    err = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(err) == 1, refused.stderr
    assert "strategy.python: plug_planted:Peek: FOUND" in err[0] and "look-ahead: candle" in err[0]
    cfg = tmp_path / "unchecked.yaml"
    cfg.write_text("defaults:\n  strategy: {python: 'plug_planted:Peek', check: false}\n")
    assert backtest("--strategy", "plug_planted:Peek", "--engine-config", str(cfg)).returncode == 0
