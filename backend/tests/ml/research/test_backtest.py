"""Backtester mechanics (the engine's fills and costs, purged folds) and one honest real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.ml.research.backtest import candle_files, main
from backend.ml.research.backtest_metrics import deflated_sharpe_prob
from backend.ml.research.trade_sim import Costs, cost_paid, trade, trade_predictions
from backend.ml.research.walk_forward import WalkForward
from backend.risk.policy import load_policy
from backend.src.core.errors import UsageError
from backend.src.trading.strategies.baselines import BuyAndHold
from backend.src.trading.strategies.decision import DecisionParams
from backend.tests.conftest import OHLCV_DIR, REAL_OHLCV


def probs(p: np.ndarray, share: list[float] | None = None) -> pd.DataFrame:
    """A predictor's frame: every model answered unless ``share`` says otherwise; no return forecast."""
    return pd.DataFrame({"prob_up": p, "weight_share": share if share is not None else 1.0,
                         "confidence": np.abs(2 * p - 1), "exp_return": np.nan})


def frame(closes: list[float]) -> pd.DataFrame:
    c = np.array(closes, dtype=float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1.0},
                        index=np.arange(len(c)) * 300_000)


def test_a_signal_fills_at_the_next_open_with_slippage_and_fee_as_in_engines() -> None:
    df = frame([100, 110, 121, 121, 121])
    prob = np.array([0.9, 0.9, 0.1, 0.1, 0.1])  # long after bar 0's close, flat after bar 2's
    policy = load_policy()
    costs = Costs(fee_bps=10, slippage_bps=5)
    ret, held, sim = trade_predictions(df, probs(prob), DecisionParams(0.6), "TESTUSDT", costs, policy)
    free, _, _ = trade_predictions(df, probs(prob), DecisionParams(0.6), "TESTUSDT", Costs(0, 0), policy)
    assert held.tolist() == [0, 0, 1, 1, 0], "bought at bar 1's open, sold at bar 3's"
    # 20 units (the policy's 20 % of 10,000 at the decision price 100) bought at 110, sold at 121:
    # never the 100 -> 110 move of the signal bar itself
    assert (1 + free).prod() - 1 == pytest.approx(20 * 11 / 10_000, rel=1e-9)
    assert free.iloc[:2].eq(0).all() and free.iloc[3:].eq(0).all()
    assert (1 + ret).prod() < (1 + free).prod(), "fees and slippage cost"
    # what they cost: a 10 bps fee on both fills plus 5 bps of slippage on each
    paid = cost_paid(sim, costs)
    notional = 20 * 110 * 1.0005 + 20 * 121 * 0.9995
    assert paid == pytest.approx(notional * 15 / 10_000 / 10_000, rel=1e-3)
    assert (1 + free).prod() - (1 + ret).prod() == pytest.approx(paid, rel=0.05)


def test_folds_purge_the_label_horizon() -> None:
    wf = WalkForward(train_bars=100, test_bars=50, horizon=12)
    folds = wf.folds(500, 620)
    assert [(tr.start, tr.stop, te.start, te.stop) for tr, te in folds] == [
        (387, 487, 500, 550), (437, 537, 550, 600), (487, 587, 600, 620)]
    # a label at bar t needs the opens of t+1 .. t+1+horizon: the last training label ends before the fold
    assert all((tr.stop - 1) + 1 + wf.horizon < te.start for tr, te in folds)


def test_monthly_folds_retrain_on_everything_before_each_month_purged_and_embargoed() -> None:
    """Hourly candles over 2022 with a missing day: one fold per calendar month; each trains on every bar before
    it except the label horizon (+1) and the embargo; the pairs' folds line up by the month's start."""
    start = int(pd.Timestamp("2022-01-01", tz="UTC").value // 10**6)
    ts = start + np.arange(365 * 24) * 3_600_000
    ts = np.delete(ts, np.arange(24 * 59, 24 * 60))  # 1 March missing
    wf = WalkForward.for_timeframe(3_600_000, horizon=24)
    assert wf.period == "month" and wf.train_bars is None and wf.embargo == 24
    folds = wf.keyed_folds(24 * 31, len(ts), ts)  # from 1 February
    months = [str(np.datetime64(k, "ms").astype("datetime64[M]")) for k, _tr, _te in folds]
    assert months == [f"2022-{m:02d}" for m in range(2, 13)]
    for key, tr, te in folds:
        assert tr.start == 0 and tr.stop == te.start - 24 - 1 - 24, "expanding, horizon + 1 purged, a day's embargo"
        assert np.datetime64(int(ts[te.start]), "ms").astype("datetime64[M]") == np.datetime64(key, "ms").astype(
            "datetime64[M]")
        assert np.datetime64(int(ts[te.stop - 1]), "ms").astype("datetime64[M]") == np.datetime64(
            int(ts[te.start]), "ms").astype("datetime64[M]"), "a fold never spans two months"
    assert ts[folds[1][2].start] == int(pd.Timestamp("2022-03-02", tz="UTC").value // 10**6), "a missing day moves on"
    assert [te.stop for _k, _tr, te in folds][-1] == len(ts)


def test_full_exposure_trades_the_whole_equity() -> None:
    """Research headlines: a target of 1 is 100 % of the equity (the policy's sizing would be 20 %)."""
    df = frame([100, 100, 110, 121, 121])
    ret, _held, _ = trade(df, BuyAndHold(), "TESTUSDT", Costs(0, 0), load_policy(), full=True)
    assert (1 + ret).prod() - 1 == pytest.approx(0.21, rel=1e-9), "bought at bar 1's open, marked at 121"
    ret, _held, _ = trade(df, BuyAndHold(), "TESTUSDT", Costs(0, 0), load_policy())
    assert (1 + ret).prod() - 1 == pytest.approx(0.2 * 0.21, rel=1e-9)


def test_a_perpetual_research_run_sells_short_at_full_exposure() -> None:
    """``--market perpetual``: a P(up) below 1 - threshold is a short of the whole equity; on spot it stays flat."""
    df = frame([100, 100, 90, 81, 81])
    prob = probs(np.array([0.1, 0.1, 0.1, 0.1, 0.1]))
    ret, held, _ = trade_predictions(df, prob, DecisionParams(0.6), "TESTUSDT", Costs(0, 0, perpetual=True),
                                     load_policy(), full=True)
    assert held.tolist() == [0, 0, 1, 1, 1] and (1 + ret).prod() - 1 == pytest.approx(0.19, rel=1e-6)
    _ret, held, _ = trade_predictions(df, prob, DecisionParams(0.6), "TESTUSDT", Costs(0, 0), load_policy(), full=True)
    assert not held.any()


def test_without_a_pattern_the_most_common_timeframe_is_backtested(tmp_path: Path) -> None:
    """The shared 5m directory also holds a 1m and a 30m file: its documented commands backtest the 5m files."""
    for name in ("AAA_BTC-5m.csv", "BBB_BTC-5m.csv", "CCC_BTC-1m.csv", "DDD_BTC-30m.csv", "AAA_BTC-funding.csv"):
        (tmp_path / name).write_text("timestamp,open,high,low,close,volume\n")
    assert [p.name for p in candle_files(tmp_path, None)] == ["AAA_BTC-5m.csv", "BBB_BTC-5m.csv"]
    assert [p.name for p in candle_files(tmp_path, "*-1m.csv")] == ["CCC_BTC-1m.csv"]
    with pytest.raises(UsageError, match="--ohlcv-dir: no files matching x"):
        candle_files(tmp_path, "x")


def test_deflated_sharpe_penalises_many_trials() -> None:
    r = np.random.default_rng(1).normal(0.0005, 0.01, 2000)
    assert deflated_sharpe_prob(r, 1) > deflated_sharpe_prob(r, 100) > 0


def test_deflated_sharpe_equals_scipys_formula() -> None:
    """The runtime computes it without SciPy (stdlib NormalDist, numpy moments); SciPy, in the full
    install, gives the reference."""
    from scipy import stats

    r = np.random.default_rng(2).standard_t(4, 3000) * 0.01 + 0.0004
    n, sr, var, g = len(r), r.mean() / r.std(ddof=1), 1.0 / len(r), 0.5772156649
    sr0 = np.sqrt(var) * ((1 - g) * stats.norm.ppf(1 - 1 / 50) + g * stats.norm.ppf(1 - 1 / (50 * np.e)))
    skew, kurt = stats.skew(r), stats.kurtosis(r, fisher=False)
    want = stats.norm.cdf((sr - sr0) * np.sqrt(n - 1) / np.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr))
    assert deflated_sharpe_prob(r, 50) == pytest.approx(want, abs=1e-9)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_walk_forward_report_is_honest(tmp_path: Path) -> None:
    """Two pairs, pooled, without the TFT: the selection ran on validation folds only, every
    strategy has its costs and turnover, and nothing is suspiciously good."""
    assert main(["--ohlcv-dir", str(OHLCV_DIR), "--pattern", "[EL]T[CH]_BTC-5m.csv", "--out", str(tmp_path),
                 "--no-tft"]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    pairs = [k for k in rep if k.endswith("-5m")]
    assert len(pairs) == 3 and all((tmp_path / f"{k}.png").stat().st_size > 5000 for k in pairs)
    sel = rep["selection"]
    assert sel["tried"] == len(sel["scores"]) == 2 * 3 * 4  # horizons x thresholds x edges
    for k in pairs:
        r = rep[k]
        s = r["strategies"]
        assert set(s) == {"ensemble", "ensemble_policy_sized", "buy_and_hold", "sma_crossover", "ts_momentum", "flat"}
        assert s["flat"]["total_return"] == 0 and s["buy_and_hold"]["position_changes"] == 1
        for name, m in s.items():
            assert m["gross_return"] == pytest.approx(m["total_return"] + m["cost_paid"]), name
            assert len(m["fold_returns"]) == 5 and m["cost_paid"] >= 0, name
        ens = s["ensemble"]
        if sel["chosen"] is None:
            assert ens["position_changes"] == 0
        # leakage alarm, on any data: the direction an hour ahead is barely predictable; far above the
        # majority rate (or an AUC of 0.7) on candles the model never saw is a bug
        assert ens["accuracy"] < max(0.62, ens["majority_rate"] + 0.08) and ens["auc"] < 0.7
        assert 0.19 <= ens["coverage_top20"] <= 0.3 and ens["brier"] < 0.3
        if REAL_OHLCV is not None:  # real markets: never clearly anti-predictive either
            assert ens["auc"] > 0.35
    assert main(["--ohlcv-dir", str(tmp_path), "--holdout", "2"]) == 2


def test_no_model_answering_is_no_opinion_not_a_coin_flip() -> None:
    """Before the 4h features exist no model answers; the fused 0.5 must not pass an entry threshold of 0.5."""
    df = frame([100, 101, 102, 103, 104])
    pred = probs(np.full(5, 0.5), share=[0.0, 0.0, 1.0, 1.0, 1.0])
    _ret, held, _ = trade_predictions(df, pred, DecisionParams(0.5, 0.5), "TESTUSDT", Costs(), load_policy())
    assert held.tolist() == [0, 0, 0, 0, 1], "only the bars some model answered on can trade"


def write_hourly(directory: Path, names: tuple[str, ...], days: int = 520) -> None:
    """Hourly random walks with a weak weekly trend, as candle files (the repo can generate them: no shared data)."""
    rng = np.random.default_rng(11)
    start = int(pd.Timestamp("2022-01-01", tz="UTC").value // 10**6)
    n = days * 24
    for i, name in enumerate(names):
        drift = 0.0004 * np.sign(np.sin(np.arange(n) / (24 * 20) + i))
        close = 100 * np.exp(np.cumsum(drift + rng.normal(0, 0.008, n)))
        opens = np.concatenate([[100.0], close[:-1]])
        pd.DataFrame({"timestamp": start + np.arange(n) * 3_600_000, "open": opens,
                      "high": np.maximum(opens, close) * 1.002, "low": np.minimum(opens, close) * 0.998,
                      "close": close, "volume": rng.uniform(10, 20, n)}).to_csv(directory / name, index=False)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_hourly_walk_forward_retrains_monthly_and_chooses_on_validation_only(tmp_path: Path) -> None:
    """Three hourly pairs: monthly folds on validation (April) and test (from 2023-05-01), the training window and
    horizons chosen there, headlines at full exposure beside the policy's sizing, per-year figures, every baseline."""
    data = tmp_path / "data"
    data.mkdir()
    write_hourly(data, ("AAA_USDT-1h.csv", "BBB_USDT-1h.csv", "CCC_USDT-1h.csv"))
    out = tmp_path / "out"
    assert main(["--ohlcv-dir", str(data), "--test-start", "2023-05-01", "--val-days", "30", "--out", str(out),
                 "--no-tft"]) == 0
    rep = json.loads((out / "report.json").read_text())
    sel = rep["selection"]
    window = (sel["chosen"] or {}).get("train_days")
    assert rep["schedule"]["retrain"] == "month"
    assert rep["schedule"]["train_window"] == ("expanding" if window is None else f"{window} days")
    assert sel["tried"] == len(sel["scores"]) == 3 * 2 * 2 * 2 * 2  # horizons x entries x edges x sizes x windows
    assert {s["train_days"] for s in sel["scores"]} == {None, 365}
    pair = rep["AAA_USDT-1h"]
    assert pair["test_from_ms"] == int(pd.Timestamp("2023-05-01", tz="UTC").value // 10**6)
    s = pair["strategies"]
    assert set(s) == {"ensemble", "ensemble_policy_sized", "buy_and_hold", "sma_crossover", "ts_momentum", "flat"}
    assert s["buy_and_hold"]["exposure"] > 0.95, "headlines at full exposure"
    assert set(s["buy_and_hold"]["calendar"]["years"]) == {"2023"}
    assert set(s["flat"]["calendar"]["months"]) == {"2023-05", "2023-06"}
    if sel["chosen"] is not None and s["ensemble"]["position_changes"]:
        assert s["ensemble_policy_sized"]["exposure"] < s["ensemble"]["exposure"]
    assert set(rep["equal_weight_portfolio"]) == set(s) and (out / "mean.png").exists()
    assert len(rep["fold_seconds"]) == 1 * 3 * 2 + 2  # (val months x horizons x windows) + test months
    assert main(["--ohlcv-dir", str(data), "--test-start", "2031-01-01", "--out", str(out)]) == 2
