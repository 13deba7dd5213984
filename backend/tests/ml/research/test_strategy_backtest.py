"""``python -m backend.ml.research.backtest --strategy``: held-out and full runs, reports, one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from backend.ml.research.backtest import main
from backend.src.core.settings import REPO_ROOT
from backend.tests.conftest import OHLCV_DIR

BTC_PAIRS = REPO_ROOT / "backend" / "strategies" / "btc_pairs.yaml"


@pytest.fixture(autouse=True)
def scratch_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEVIBOT_DATA_DIR", str(tmp_path / "data"))  # no promoted model of the developer's


def test_held_out_run_beside_buy_and_hold_and_flat(tmp_path: Path) -> None:
    out = tmp_path / "out"
    levi = REPO_ROOT / "backend" / "strategies" / "trend_htf.levi.yaml"
    assert main(["--strategy", str(levi), "--ohlcv-dir", str(OHLCV_DIR), "--pattern", "ETH_BTC-5m.csv",
                 "--engine-config", str(BTC_PAIRS), "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    pair = rep["pairs"]["ETHBTC"]
    assert rep["mode"] == "held-out final 25%" and pair["candles"] == 5760 - int(5760 * 0.75)
    assert set(pair["strategies"]) == {"strategy", "buy_and_hold", "flat"} and len(pair["strategy_hash"]) == 16
    assert pair["strategies"]["buy_and_hold"]["trades"] == 1 and pair["strategies"]["flat"]["total_return"] == 0
    assert (out / "ETHBTC" / "equity.png").stat().st_size > 5000
    assert not (out / "ETHBTC" / "fills.csv").exists(), "fills.csv is the --full run's"
    with (out / "ETHBTC" / "trades.csv").open() as fh:
        trades = list(csv.DictReader(fh))
    assert len(trades) == int(pair["strategies"]["strategy"]["trades"]) or len(trades) + 1 == int(
        pair["strategies"]["strategy"]["trades"])  # a position still open at the end is no round trip yet


def test_full_run_writes_the_fills(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["--strategy", "sma_crossover", "--full", "--ohlcv-dir", str(OHLCV_DIR), "--pattern",
                 "ETH_BTC-5m.csv", "--engine-config", str(BTC_PAIRS), "--out", str(out)]) == 0
    with (out / "ETHBTC" / "fills.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["candle_ts", "side", "qty", "price", "fee", "reason"] and len(rows) > 20
    assert all(r[5].startswith("sma10/30") for r in rows[1:]), "each fill names the signal that made it"
    sides = [r[1] for r in rows[1:]]
    assert all(a != b for a, b in zip(sides, sides[1:], strict=False)), "one fill per signal change"


@pytest.mark.parametrize(("args", "message"), [
    (["--strategy", "sma_crosover", "--engine-config", str(BTC_PAIRS)],
     "backtest: error: --strategy: strategy.name: unknown strategy 'sma_crosover'"),
    (["--strategy", "sma_crossover"],  # a BTC pair and no config saying how much BTC to trade
     "backtest: error: <defaults>: defaults.size_usd: ETHBTC is quoted in BTC, not USD; set size_quote"),
    (["--full"], "backtest: error: --full: needs --strategy or --engine-config"),
])
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                               message: str) -> None:
    code = main([*args, "--ohlcv-dir", str(OHLCV_DIR), "--pattern", "ETH_BTC-5m.csv", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(message), err


def test_short_rules_on_a_spot_config_are_refused_in_one_line(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    shorts = REPO_ROOT / "backend" / "strategies" / "trend_long_short.levi.yaml"
    assert main(["--strategy", str(shorts), "--ohlcv-dir", str(OHLCV_DIR), "--pattern", "ETH_BTC-5m.csv",
                 "--engine-config", str(BTC_PAIRS), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--strategy: strategy.levilang: trend_long_short.levi.yaml: entry_short" in err
