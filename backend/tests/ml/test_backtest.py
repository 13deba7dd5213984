"""Backtester mechanics (the engine's fills and costs, the one hold rule, purged folds) and one honest real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.ml.backtest import DEFAULT_CONFIG, WalkForward, main, run_series
from backend.ml.backtest_metrics import deflated_sharpe_prob
from backend.ml.feature_pipeline import load_ohlcv
from backend.ml.models.ensemble_predictor import EnsembleConfig
from backend.ml.trade_sim import Costs, trade_probabilities
from backend.risk.policy import load_policy
from backend.src.core.settings import Settings
from backend.src.trading.strategies.ensemble import HoldRule
from backend.tests.conftest import OHLCV_DIR, REAL_OHLCV


def frame(closes: list[float]) -> pd.DataFrame:
    c = np.array(closes, dtype=float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1.0},
                        index=np.arange(len(c)) * 300_000)


def test_a_signal_fills_at_the_next_open_with_slippage_and_fee_as_in_engines() -> None:
    df = frame([100, 110, 121, 121, 121])
    prob = np.array([0.9, 0.9, 0.1, 0.1, 0.1])  # long after bar 0's close, flat after bar 2's
    policy = load_policy()
    ret, held = trade_probabilities(df, prob, 0.6, "TESTUSDT", Costs(fee_bps=10, slippage_bps=5), policy)
    free, _ = trade_probabilities(df, prob, 0.6, "TESTUSDT", Costs(0, 0), policy)
    assert held.tolist() == [0, 0, 1, 1, 0], "bought at bar 1's open, sold at bar 3's"
    # 20 units (the policy's 20 % of 10,000 at the decision price 100) bought at 110, sold at 121:
    # never the 100 -> 110 move of the signal bar itself
    assert (1 + free).prod() - 1 == pytest.approx(20 * 11 / 10_000, rel=1e-9)
    assert free.iloc[:2].eq(0).all() and free.iloc[3:].eq(0).all()
    assert (1 + ret).prod() < (1 + free).prod(), "fees and slippage cost"


def test_the_hold_rule() -> None:
    rule = HoldRule(0.6)
    assert [rule(p) for p in (0.55, 0.61, 0.52, 0.49, np.nan, 0.7)] == [0, 1, 1, 0, 0, 1]
    restarted = HoldRule(0.6)  # a fresh rule (an engine restart) over a position the ledger holds
    assert [restarted(p, holding=True) for p in (0.55, 0.52)] == [1, 1] and restarted(0.45, holding=True) == 0


def test_folds_purge_the_label_horizon() -> None:
    wf = WalkForward(train_bars=100, test_bars=50, horizon=12)
    folds = wf.folds(500, 620)
    assert [(tr.start, tr.stop, te.start, te.stop) for tr, te in folds] == [
        (388, 488, 500, 550), (438, 538, 550, 600), (488, 588, 600, 620)]
    assert all(tr.stop + wf.horizon <= te.start for tr, te in folds)


def test_deflated_sharpe_penalises_many_trials() -> None:
    r = np.random.default_rng(1).normal(0.0005, 0.01, 2000)
    assert deflated_sharpe_prob(r, 1) > deflated_sharpe_prob(r, 100) > 0


@pytest.mark.slow
def test_real_walk_forward_is_honest(settings: Settings) -> None:
    df = load_ohlcv(OHLCV_DIR / "ETH_BTC-5m.csv")
    rep = run_series(df, EnsembleConfig.load(DEFAULT_CONFIG), WalkForward(), 0.25, Costs(),
                     load_policy(settings.risk_policy), symbol="ETHBTC")
    s = rep["strategies"]
    assert set(s) == {"ensemble", "lgbm_only", "buy_and_hold", "sma_crossover", "flat"}
    assert s["flat"]["total_return"] == 0 and s["buy_and_hold"]["trades"] == 1
    assert rep["bars"] == len(df) - int(len(df) * 0.75)
    ens = s["ensemble"]
    # leakage alarm, on any data: 5m direction an hour ahead is barely predictable; far above the
    # majority rate (or an AUC of 0.7) on candles the model never saw is a bug
    assert ens["accuracy"] < max(0.62, ens["majority_rate"] + 0.08) and ens["auc"] < 0.7
    assert 0 <= ens["coverage"] <= 1 and ens["brier"] < 0.3
    if REAL_OHLCV is not None:  # real markets: never clearly anti-predictive either (the generated walk's
        assert ens["accuracy"] > 0.4 and ens["auc"] > 0.35  # regime switches can make it so)
    for k in ("sharpe", "sortino", "max_drawdown", "win_rate", "profit_factor", "turnover", "deflated_sharpe_prob"):
        assert k in ens


@pytest.mark.slow
def test_cli_writes_report_and_chart(tmp_path: Path) -> None:
    assert main(["--ohlcv-dir", str(OHLCV_DIR), "--pattern", "ETH_BTC-5m.csv", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.json").stat().st_size > 500 and (tmp_path / "ETH_BTC-5m.png").stat().st_size > 5000
    assert main(["--ohlcv-dir", str(tmp_path), "--holdout", "2"]) == 2
