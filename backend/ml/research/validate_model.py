"""Validation gate: ``python -m backend.ml.research.validate_model --model latest [--promote]``.

The candidate (``latest``, ``current`` or a version) must verify against its checksums
(nothing is loaded otherwise) and must not be worse than the production model on the same
recent window — the bars the candidate was not trained on (its ``holdout_bars``) — beyond a
tolerance: Sharpe down by at most ``LEVIBOT_RETRAIN_SHARPE_TOLERANCE``, max drawdown up by
at most ``LEVIBOT_RETRAIN_DRAWDOWN_TOLERANCE``. It must also beat the best baseline (buy-and-hold,
the SMA crossover, time-series momentum, flat) on that window by ``LEVIBOT_RETRAIN_BASELINE_MARGIN``
Sharpe units, with a deflated Sharpe (every configuration the tuner tried counted) of at least
``LEVIBOT_RETRAIN_MIN_DEFLATED_SHARPE`` (``LEVIBOT_RETRAIN_BEAT_BASELINES=false`` turns this off).
All are traded as engines trade them (the decision rule or strategy, the risk sizer and the trader:
next-open fills, slippage, fees).
Prints one JSON verdict; exit 0 when it passes (and is promoted with ``--promote``), 1 when it is kept as a candidate.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from backend.ml.research.backtest import sma_lengths, ts_momentum, warm_baseline
from backend.ml.research.backtest_metrics import trading_metrics
from backend.ml.research.trade_sim import Costs, trade_predictions
from backend.risk.policy import RiskPolicy, load_policy
from backend.src.core.errors import EXIT_USAGE, UsageError
from backend.src.core.settings import Settings, cli_path, cli_settings
from backend.src.models.backends import Backends
from backend.src.models.ensemble_predictor import EnsemblePredictor
from backend.src.models.feature_pipeline import build, find_file, infer_timeframe_ms, load_ohlcv
from backend.src.models.registry import ChecksumError, Registry
from backend.src.trading.strategies.base import Strategy
from backend.src.trading.strategies.baselines import BuyAndHold, SmaCrossover
from backend.src.trading.strategies.ensemble import decision_of

WARMUP = 3000  # bars of history before the window, for the features (1w windows of 1h bars) and the TFT encoder


def summarise(runs: list[tuple[pd.Series, np.ndarray]], per_year: float, n_trials: int = 1) -> dict[str, float]:
    """Mean Sharpe, return and deflated Sharpe over the symbols; the worst drawdown."""
    ms = [trading_metrics(ret, held, per_year, n_trials) for ret, held in runs]
    out = {k: float(np.mean([m[k] for m in ms])) for k in ("sharpe", "total_return", "deflated_sharpe_prob")}
    return {**out, "max_drawdown": float(max(m["max_drawdown"] for m in ms))}


def evaluate(model: EnsemblePredictor, frames: dict[str, Any], bars: int, policy: RiskPolicy,
             n_trials: int = 1) -> dict[str, float]:
    """The model traded on each symbol's last ``bars`` by the engine's decision rule, sizer and trader."""
    runs = []
    for sym, df in frames.items():
        feats = build(df.iloc[-(bars + WARMUP):]).iloc[-bars:]
        window = df.iloc[-bars:]
        pred = model.predict(feats)
        prob = pred["prob_up"].to_numpy()
        if not np.isfinite(prob).all() or ((prob < 0) | (prob > 1)).any():
            raise ValueError("the model produced probabilities outside [0, 1]")
        ret, held, _ = trade_predictions(window, pred, decision_of(model.config), str(sym), Costs(), policy)
        runs.append((ret, held))
    return summarise(runs, 365 * 86400_000 / infer_timeframe_ms(next(iter(frames.values()))), n_trials)


def baselines(frames: dict[str, Any], bars: int, policy: RiskPolicy) -> dict[str, dict[str, float]]:
    """Each baseline traded on the same window as the candidate, warmed on the bars before it."""
    tf_ms = infer_timeframe_ms(next(iter(frames.values())))
    makers: dict[str, Callable[[], Strategy]] = {
        "buy_and_hold": BuyAndHold, "sma_crossover": lambda: SmaCrossover(*sma_lengths(tf_ms)),
        "ts_momentum": lambda: ts_momentum(tf_ms)}
    out = {}
    for name, make in makers.items():
        runs = []
        for sym, df in frames.items():
            start = max(0, len(df) - bars)
            ret, held, _ = warm_baseline(df, start, make(), str(sym), Costs(), policy, full=False)
            runs.append((ret, held))
        out[name] = summarise(runs, 365 * 86400_000 / tf_ms)
    out["flat"] = {"sharpe": 0.0, "max_drawdown": 0.0, "total_return": 0.0, "deflated_sharpe_prob": 0.0}
    return out


def beats_baselines(settings: Settings, cand: dict[str, float], base: dict[str, dict[str, float]]) -> str | None:
    """Why the candidate does not beat the best baseline by the margin (None: it does)."""
    best = max(base, key=lambda k: base[k]["sharpe"])
    need = base[best]["sharpe"] + settings.retrain_baseline_margin
    if cand["sharpe"] < need:
        return (f"does not beat the best baseline ({best}, sharpe {base[best]['sharpe']:.2f}) by "
                f"{settings.retrain_baseline_margin:g}: sharpe {cand['sharpe']:.2f}")
    if cand["deflated_sharpe_prob"] < settings.retrain_min_deflated_sharpe:
        return (f"deflated sharpe {cand['deflated_sharpe_prob']:.2f} below "
                f"{settings.retrain_min_deflated_sharpe:g}: its sharpe is within what that many tries find by luck")
    return None


def resolve(reg: Registry, name: str) -> str:
    if name == "latest":
        versions = reg.versions()
        if not versions:
            raise UsageError("--model latest: the registry has no versions")
        return versions[-1]
    if name == "current":
        cur = reg.current()
        if cur is None:
            raise UsageError("--model current: no production model")
        return cur
    reg.metadata(name)  # raises when unknown
    return name


def gate(settings: Settings, reg: Registry, candidate: str, bars: int | None = None) -> dict[str, Any]:
    """The verdict for ``candidate`` against the production model."""
    verdict: dict[str, Any] = {"candidate": candidate, "production": reg.current(), "passed": False}
    try:
        cand_model = EnsemblePredictor.load(reg.verify(candidate), Backends.of(settings))
    except ChecksumError as exc:
        verdict["reason"] = f"checksums: {exc}"
        return verdict
    meta = reg.metadata(candidate)
    syms = list(meta.get("symbols") or [meta.get("symbol")])
    bars = bars or int(meta.get("holdout_bars") or 0) or 288
    ohlcv = settings.data_dir / "ohlcv"
    frames = {s: load_ohlcv(find_file(ohlcv, s, meta.get("timeframe", "5m"))) for s in syms}
    risk = load_policy(settings.risk_policy)
    try:
        verdict["candidate_figures"] = cand = evaluate(cand_model, frames, bars, risk, int(meta.get("n_trials") or 1))
    except ValueError as exc:
        verdict["reason"] = f"candidate unusable: {exc}"
        return verdict
    verdict["window_bars"] = bars
    if settings.retrain_beat_baselines:
        verdict["baseline_figures"] = base = baselines(frames, bars, risk)
        why = beats_baselines(settings, cand, base)
        if why is not None:
            verdict["reason"] = why
            return verdict
    prod = verdict["production"]
    if prod is None or prod == candidate:
        verdict.update(passed=True, reason="no production model to beat" if prod is None else "already production")
        return verdict
    try:
        prod_figs = evaluate(EnsemblePredictor.load(reg.verify(prod), Backends.of(settings)), frames, bars, risk)
    except (ChecksumError, ValueError, OSError, KeyError) as exc:
        verdict.update(passed=True, reason=f"production model unusable ({exc}); candidate replaces it")
        return verdict
    verdict["production_figures"] = prod_figs
    worse_sharpe = cand["sharpe"] < prod_figs["sharpe"] - settings.retrain_sharpe_tolerance
    worse_dd = cand["max_drawdown"] > prod_figs["max_drawdown"] + settings.retrain_drawdown_tolerance
    if worse_sharpe or worse_dd:
        verdict["reason"] = (f"worse than {prod} on the last {bars} bars: sharpe {cand['sharpe']:.2f} vs "
                             f"{prod_figs['sharpe']:.2f}, drawdown {cand['max_drawdown']:.3f} vs "
                             f"{prod_figs['max_drawdown']:.3f}")
        return verdict
    verdict.update(passed=True, reason=f"not worse than {prod} within tolerance")
    return verdict


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="validate_model", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="latest", help="latest | current | ensemble_YYYYMMDD_HHMMSS")
    ap.add_argument("--promote", action="store_true", help="make it production when it passes")
    ap.add_argument("--bars", type=int, default=None, help="window length (default: the model's holdout_bars)")
    ap.add_argument("--data-dir", type=cli_path, default=None)
    args = ap.parse_args(argv)
    try:
        settings = cli_settings(args.data_dir)
        reg = Registry(settings.models_dir)
        candidate = resolve(reg, args.model)
        verdict = gate(settings, reg, candidate, args.bars)
        if verdict["passed"] and args.promote and verdict["production"] != candidate:
            reg.promote(candidate, reason=verdict["reason"])
            verdict["promoted"] = True
    except UsageError as exc:
        print(f"validate_model: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(verdict, default=float))
    return 0 if verdict["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
