"""Backtests through the engine's own trading code.

``python -m backend.ml.backtest --ohlcv-dir DIR [--holdout 0.25] [--out DIR]``: the ensemble's
walk-forward backtest. For every 5m file, the final ``holdout`` share of the series is the test
region; it is cut into day-long folds, and before each fold the models are trained on the past only
(rolling window), with the last ``horizon`` bars before the fold purged (their labels would peek
into it). The probabilities are then traded candle by candle by the engine's hold rule, sizer and
trader (fill at the next candle's open plus slippage, taker fee, risk-policy sizing, no
re-sizing while the signal stands) beside buy-and-hold, the SMA crossover and always-flat.

``python -m backend.ml.backtest --strategy NAME|FILE --ohlcv-dir DIR [--full --engine-config C]``: a
rule strategy (built in or LeviLang) — see ``backend.ml.strategy_backtest``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.ml.backtest_metrics import mean_over_pairs, plot, prediction_metrics, trading_metrics
from backend.ml.feature_pipeline import build, infer_timeframe_ms, label_up, load_ohlcv
from backend.ml.models.base import Model, Precomputed
from backend.ml.models.ensemble_predictor import FEATURE_SETS, EnsembleConfig, EnsemblePredictor
from backend.ml.models.tft import TFTModel
from backend.ml.trade_sim import Costs, candles_of, trade, trade_probabilities
from backend.risk.policy import RiskPolicy, load_policy
from backend.src.core.errors import EXIT_USAGE, UsageError
from backend.src.core.settings import REPO_ROOT, Settings, cli_path
from backend.src.market.candles import symbol_of_file
from backend.src.trading.strategies.baselines import BuyAndHold, SmaCrossover

log = logging.getLogger(__name__)
DEFAULT_CONFIG = REPO_ROOT / "backend" / "ml" / "ensemble.yaml"


@dataclass(frozen=True)
class WalkForward:
    train_bars: int = 2880  # 10 days of 5m
    test_bars: int = 288  # one day
    horizon: int = 12  # label: close 12 bars (1 h) later above this close

    def folds(self, start: int, end: int) -> list[tuple[slice, slice]]:
        out = []
        t = start
        while t < end:
            train_end = t - self.horizon  # purge: these labels look into the test fold
            out.append((slice(max(0, train_end - self.train_bars), train_end), slice(t, min(end, t + self.test_bars))))
            t += self.test_bars
        return out


def only(config: EnsembleConfig, name: str) -> EnsembleConfig:
    return EnsembleConfig(models=[s for s in config.models if s.name == name], threshold=config.threshold)


def fold_models(config: EnsembleConfig, tft_probs: pd.Series | None) -> dict[str, Model]:
    """Fresh models for one fold; the TFT (trained once, before the test region) is looked up."""
    models = EnsemblePredictor(config).models
    if "tft" in models:
        models["tft"] = Precomputed(models["tft"].features, tft_probs)
    return models


def train_tft(series: dict[str, pd.DataFrame], holdout: float, **params: Any) -> TFTModel:
    """One TFT across symbols, trained on the part of every series before its test region."""
    parts = []
    for sym, feats in series.items():
        part = feats.iloc[: int(len(feats) * (1 - holdout))].copy()
        part["symbol"] = sym
        parts.append(part)
    return TFTModel(list(FEATURE_SETS["price_history"]), **params).fit(pd.concat(parts), pd.Series(dtype=float))


def sma_baseline(df: pd.DataFrame, start: int, symbol: str, costs: Costs,
                 policy: RiskPolicy) -> tuple[pd.Series, np.ndarray]:
    sma = SmaCrossover(12, 48)
    sma.warmup(candles_of(df.iloc[max(0, start - sma.warmup_candles):start]))
    ret, held, _ = trade(df.iloc[start:], sma, symbol, costs, policy)
    return ret, held


def run_series(df: pd.DataFrame, config: EnsembleConfig, wf: WalkForward, holdout: float, costs: Costs,
               policy: RiskPolicy, n_trials: int = 1, tft_probs: pd.Series | None = None,
               symbol: str = "BACKTEST") -> dict[str, Any]:
    """Walk-forward over the final ``holdout`` share of one series; every strategy on the same bars,
    every one traded by the engine's execution model."""
    feats = build(df)
    y = label_up(df, wf.horizon)
    start = int(len(df) * (1 - holdout))
    variants = {"ensemble": config, "lgbm_only": only(config, "lgbm")}
    if tft_probs is not None:
        variants["tft_only"] = only(config, "tft")
    probs = {k: np.full(len(df), np.nan) for k in variants}
    confs = {k: np.zeros(len(df)) for k in variants}
    for train, test in wf.folds(start, len(df)):
        for name, cfg in variants.items():
            model = EnsemblePredictor(cfg, fold_models(cfg, tft_probs)).fit(feats.iloc[train], y.iloc[train])
            pred = model.predict(feats.iloc[test])
            probs[name][test] = pred["prob_up"].to_numpy()
            confs[name][test] = pred["confidence"].to_numpy()
    sl = slice(start, len(df))
    test_df = df.iloc[sl]
    per_year = 365 * 86400_000 / infer_timeframe_ms(df)
    runs: dict[str, tuple[pd.Series, np.ndarray]] = {
        name: trade_probabilities(test_df, p[sl], config.threshold, symbol, costs, policy, confs[name][sl])
        for name, p in probs.items()}
    ret, held, _ = trade(test_df, BuyAndHold(), symbol, costs, policy)
    runs["buy_and_hold"] = (ret, held)
    runs["sma_crossover"] = sma_baseline(df, start, symbol, costs, policy)
    runs["flat"] = (pd.Series(np.zeros(len(test_df)), index=test_df.index), np.zeros(len(test_df)))
    report: dict[str, Any] = {"bars": len(test_df), "test_from_ms": int(test_df.index[0]),
                              "test_to_ms": int(test_df.index[-1]), "strategies": {}}
    curves = {}
    for name, (ret, held) in runs.items():
        curves[name] = ret
        entry = trading_metrics(ret, held, per_year, n_trials if name == "ensemble" else 1)
        if name in probs:
            entry.update(prediction_metrics(probs[name][sl], y.to_numpy()[sl], config.threshold))
        report["strategies"][name] = entry
    report["curves"] = curves
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="backtest", description=__doc__.splitlines()[0])
    ap.add_argument("--ohlcv-dir", type=cli_path, required=True)
    ap.add_argument("--pattern", default="*-5m.csv")
    ap.add_argument("--holdout", type=float, default=0.25)
    ap.add_argument("--config", type=cli_path, default=DEFAULT_CONFIG, help="ensemble config (walk-forward)")
    ap.add_argument("--out", type=cli_path, default=None, help="report dir (default <data dir>/backtests)")
    ap.add_argument("--no-tft", action="store_true", help="leave the TFT out (it trains for a minute or two)")
    ap.add_argument("--strategy", default=None,
                    help="a built-in strategy name or a *.levi.yaml file: backtest it instead of the walk-forward")
    ap.add_argument("--full", action="store_true",
                    help="with --strategy: the whole file from a flat start, as an engine replaying it (fills.csv)")
    ap.add_argument("--engine-config", type=cli_path, default=None,
                    help="engine config (YAML) for the symbol: sizes, fees, slippage, stops, strategy params")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if not 0 < args.holdout < 1:
            raise UsageError("--holdout: must be between 0 and 1")
        if args.full and args.strategy is None and args.engine_config is None:
            raise UsageError("--full: needs --strategy or --engine-config (the strategy to replay)")
        settings = Settings()
        files = sorted(args.ohlcv_dir.glob(args.pattern)) if args.ohlcv_dir.is_dir() else []
        if not files:
            raise UsageError(f"--ohlcv-dir: no files matching {args.pattern} in {args.ohlcv_dir}")
        out = args.out or settings.data_dir / "backtests"
        out.mkdir(parents=True, exist_ok=True)
        if args.strategy is not None or args.full:
            from backend.ml.strategy_backtest import run  # noqa: PLC0415

            run(args, settings, files, out)
            return 0
        walk_forward(args, settings, files, out)
    except UsageError as exc:
        print(f"backtest: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def walk_forward(args: argparse.Namespace, settings: Settings, files: list[Path], out: Path) -> None:
    config = EnsembleConfig.load(args.config)
    policy = load_policy(settings.risk_policy)
    summary: dict[str, Any] = {}
    frames = {f.stem: load_ohlcv(f) for f in files}
    tft_probs: dict[str, pd.Series | None] = dict.fromkeys(frames)
    if not args.no_tft and any(s.name == "tft" and s.weight > 0 for s in config.models):
        feats = {k: build(v) for k, v in frames.items()}
        t0 = time.monotonic()
        tft = train_tft(feats, args.holdout)
        summary["tft_train_seconds"] = time.monotonic() - t0
        tft_probs = {k: pd.Series(tft.predict_proba(v), index=v.index) for k, v in feats.items()}
    for f in files:
        rep = run_series(frames[f.stem], config, WalkForward(), args.holdout, Costs(), policy,
                         tft_probs=tft_probs[f.stem], symbol=symbol_of_file(f))
        plot(rep.pop("curves"), f.stem, out / f"{f.stem}.png")
        summary[f.stem] = rep
        s = rep["strategies"]
        log.info("%s: %s", f.stem, " | ".join(
            f"{k} acc {v.get('accuracy', float('nan')):.3f} sharpe {v['sharpe']:.2f} dd {v['max_drawdown']:.3f}"
            for k, v in s.items()))
    summary["mean_over_pairs"] = mean_over_pairs({k: v for k, v in summary.items() if isinstance(v, dict)})
    for name, m in summary["mean_over_pairs"].items():
        log.info("MEAN %-14s %s", name, " ".join(f"{k} {v:.3f}" for k, v in m.items()))
    (out / "report.json").write_text(json.dumps(summary, indent=1, default=float))


if __name__ == "__main__":
    sys.exit(main())
