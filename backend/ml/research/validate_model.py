"""Validation gate: ``python -m backend.ml.research.validate_model --model latest [--promote]``.

The candidate (``latest``, ``current`` or a version) must verify against its checksums
(nothing is loaded otherwise) and must not be worse than the production model on the same
recent window — the bars the candidate was not trained on (its ``holdout_bars``) — beyond a
tolerance: Sharpe down by at most ``LEVIBOT_RETRAIN_SHARPE_TOLERANCE``, max drawdown up by
at most ``LEVIBOT_RETRAIN_DRAWDOWN_TOLERANCE``. Both are traded as engines trade them (the
ensemble's decision rule, the risk sizer and the trader: next-open fills, slippage, fees).
Prints one JSON verdict; exit 0 when it passes (and is promoted with ``--promote``), 1 when it is kept as a candidate.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from backend.ml.research.backtest_metrics import trading_metrics
from backend.ml.research.trade_sim import Costs, trade_predictions
from backend.risk.policy import RiskPolicy, load_policy
from backend.src.core.errors import EXIT_USAGE, UsageError
from backend.src.core.settings import Settings, cli_path, cli_settings
from backend.src.models.backends import Backends
from backend.src.models.ensemble_predictor import EnsemblePredictor
from backend.src.models.feature_pipeline import build, find_file, infer_timeframe_ms, load_ohlcv
from backend.src.models.registry import ChecksumError, Registry
from backend.src.trading.strategies.ensemble import decision_of

WARMUP = 1000  # bars of history before the window, for the features (4h windows) and the TFT encoder


def evaluate(model: EnsemblePredictor, frames: dict[str, Any], bars: int, policy: RiskPolicy) -> dict[str, float]:
    """The model traded on each symbol's last ``bars`` by the engine's decision rule, sizer and trader."""
    sharpes, dds, rets = [], [], []
    for sym, df in frames.items():
        feats = build(df.iloc[-(bars + WARMUP):]).iloc[-bars:]
        window = df.iloc[-bars:]
        pred = model.predict(feats)
        prob = pred["prob_up"].to_numpy()
        if not np.isfinite(prob).all() or ((prob < 0) | (prob > 1)).any():
            raise ValueError("the model produced probabilities outside [0, 1]")
        ret, held, _ = trade_predictions(window, pred, decision_of(model.config), str(sym), Costs(), policy)
        m = trading_metrics(ret, held, 365 * 86400_000 / infer_timeframe_ms(df))
        sharpes.append(m["sharpe"])
        dds.append(m["max_drawdown"])
        rets.append(m["total_return"])
    return {"sharpe": float(np.mean(sharpes)), "max_drawdown": float(np.max(dds)),
            "total_return": float(np.mean(rets))}


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
        verdict["candidate_figures"] = cand = evaluate(cand_model, frames, bars, risk)
    except ValueError as exc:
        verdict["reason"] = f"candidate unusable: {exc}"
        return verdict
    verdict["window_bars"] = bars
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
