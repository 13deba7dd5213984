"""Backtest = live: a real engine replaying a candle file and the backtester's ``--full`` run of the same
file with the same engine config produce the same fills (candle, side, quantity, price, fee), for the
SMA baseline, the ensemble (a small trained model, promoted in the registry) and LeviLang strategies,
on every shared candle file."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from backend.src.core.settings import REPO_ROOT
from backend.src.market.candles import symbol_of_file
from backend.src.models.ensemble_predictor import EnsembleConfig, EnsemblePredictor, ModelSpec
from backend.src.models.feature_pipeline import build, label_up, load_ohlcv
from backend.src.models.registry import Registry
from backend.tests.conftest import OHLCV_DIR, ManagerProc, fast_env
from backend.tests.integration.helpers import backtest_full, fills, replay_all

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
STRATEGIES = REPO_ROOT / "backend" / "strategies"
ENSEMBLE_CANDLES = 500  # the ensemble computes features per candle: a prefix of each file keeps this test short


def promote_small_model(models: Path) -> str:
    df = load_ohlcv(OHLCV_DIR / "ETH_BTC-5m.csv")
    cfg = EnsembleConfig(models=[ModelSpec(name="lgbm", weight=1.0, params={"n_estimators": 20})], threshold=0.52)
    model = EnsemblePredictor(cfg).fit(build(df).iloc[:2500], label_up(df, 12).iloc[:2500])
    model.calibration = (1.0, 0.0)  # the plumbing under test, not this small model's skill: it must trade
    reg = Registry(models)
    version = reg.save(model.save, {})
    reg.promote(version)
    return version


def candle_files(tmp: Path) -> dict[str, tuple[str, Path]]:
    """symbol → (strategy kind, file): every shared file three times, under three names."""
    out: dict[str, tuple[str, Path]] = {}
    for src in sorted(OHLCV_DIR.glob("*.csv")):
        pair, tf = src.stem.split("-")
        tag = pair.replace("UNITTEST", f"U{tf.upper()}")  # the 1m and 30m files are one pair: keep them apart
        lines = src.read_text().splitlines(keepends=True)
        for kind in ("SMA", "LEVI", "ENS"):
            dst = tmp / f"{kind}_{tag}-{tf}.csv"
            dst.write_text("".join(lines[: ENSEMBLE_CANDLES + 1] if kind == "ENS" else lines))
            out[symbol_of_file(dst)] = (kind, dst)
    return out


def levi_file(tmp: Path, example: str, tf: str) -> Path:
    """A shipped example, written for this file's timeframe (its higher-timeframe filters stay)."""
    path = tmp / f"{example}_{tf}.levi.yaml"
    if not path.exists():
        text = (STRATEGIES / f"{example}.levi.yaml").read_text()
        path.write_text(text.replace("timeframe: 5m", f"timeframe: {tf}"))
    return path


def engine_config(path: Path, files: dict[str, tuple[str, Path]]) -> None:
    """SMA on every file; LeviLang trend following and mean reversion, the ensemble and the ensemble-gated
    LeviLang example, each on every other file."""
    lines = ["defaults:", "  size_quote: 0.5", "  initial_equity: 10", "  fee_bps: 7.5", "  slippage_bps: 3",
             "symbols:"]
    for i, (sym, (kind, f)) in enumerate(sorted(files.items())):
        tf, odd = f.stem.split("-")[1], (i // 3) % 2
        if kind == "SMA":
            strategy = "{name: sma_crossover, params: {fast: 10, slow: 30}}"
        elif kind == "ENS" and not odd:
            strategy = "{name: ensemble, params: {fast: 5, slow: 20}}"
        else:
            example = "ensemble_gated" if kind == "ENS" else ("mean_reversion" if odd else "trend_htf")
            strategy = f"{{levilang: {levi_file(path.parent, example, tf)}}}"
        lines += [f"  {sym}:", f"    strategy: {strategy}"]
    path.write_text("\n".join(lines) + "\n")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-300)


def test_engine_replay_and_backtest_fill_alike(redis_server, ns: str, data_dir: Path, r: redis.Redis,
                                               tmp_path: Path, start_manager: Callable[..., ManagerProc]) -> None:
    candles_dir = tmp_path / "candles"
    candles_dir.mkdir()
    files = candle_files(candles_dir)
    config = tmp_path / "parity.yaml"
    engine_config(config, files)
    version = promote_small_model(data_dir / "models")
    symbols = sorted(files)
    env = fast_env(redis_server.url, ns, data_dir)
    m = ManagerProc(["--symbols", ",".join(symbols), "--config", str(config), "--source", f"replay:{candles_dir}"],
                    {**env, "LEVIBOT_REPLAY_SPEED": "1e9", "LEVIBOT_MAX_ENGINES": "60",
                     # 27 engines flat out on a small machine: a slow heartbeat is not a hang here, and a
                     # restart (strategy re-warmed from a window of history) would be another experiment
                     "LEVIBOT_HEARTBEAT_TIMEOUT_S": "120", "LEVIBOT_START_TIMEOUT_S": "120"})
    replay_all(m, r, ns, symbols)
    out = backtest_full(candles_dir, config, tmp_path / "bt", env)
    traded: dict[str, int] = {"SMA": 0, "LEVI": 0, "ENS": 0}
    for sym, (kind, _f) in files.items():
        live = fills(data_dir, sym)
        bt = read_csv(out / sym / "fills.csv")
        assert len(live) == len(bt), f"{sym}: engine {len(live)} fills, backtest {len(bt)}"
        for a, b in zip(live, bt, strict=True):
            assert int(a["candle_ts"]) == int(b["candle_ts"]) and a["side"] == b["side"], (sym, a, b)
            for k in ("qty", "price", "fee"):
                assert close(float(a[k]), float(b[k])), (sym, k, a[k], b[k])  # type: ignore[arg-type]
        traded[kind] += len(live)
        if kind == "SMA":
            assert live, f"{sym}: the strategy traded"
    assert traded["ENS"] > 0 and traded["LEVI"] > 0, traded
    orders = [e for s, (k, _f) in files.items() if k == "ENS" for e in _orders(data_dir, s)]
    assert orders and {o["model"] for o in orders} == {version}, "every ensemble order names its model"


def _orders(data_dir: Path, symbol: str) -> list[dict[str, object]]:
    from backend.tests.integration.helpers import journal_entries  # noqa: PLC0415

    return [e for e in journal_entries(data_dir, symbol) if e["type"] == "order"]
