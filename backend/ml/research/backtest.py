"""Backtests through the engine's own trading code.

``python -m backend.ml.research.backtest --ohlcv-dir DIR [--holdout 0.25] [--val-days 5] [--out DIR]``: the
ensemble's walk-forward backtest (``backend.ml.research.walk_forward``). For every 5m file, the final
``holdout`` share is the test region, the ``val-days`` before it the validation region; both are cut
into day-long folds, and before each fold one model for all pairs is trained on their past only
(rolling window, the label horizon purged). The horizon and the decision parameters are chosen on
the validation folds; the test region is then traded once, candle by candle, by the engine's
decision rule, sizer and trader (fill at the next candle's open plus slippage, taker fee,
risk-policy sizing) beside buy-and-hold, the SMA crossover and always-flat. ``report.json`` has
per pair and per strategy the net and gross return, costs paid, turnover, exposure, the daily
(per-fold) returns and the prediction metrics, the selection with every configuration tried, and
the ``mean_over_pairs``.

``python -m backend.ml.research.backtest --strategy NAME|FILE --ohlcv-dir DIR [--full --engine-config C]``: a
rule strategy (built in or LeviLang) — see ``backend.ml.research.strategy_backtest``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.ml.research.backtest_metrics import (
    calendar_report,
    cost_report,
    mean_over_pairs,
    plot,
    prediction_metrics,
    trading_metrics,
)
from backend.ml.research.trade_sim import (
    Costs,
    candles_of,
    cost_paid,
    exposure_of,
    trade,
    trade_predictions,
    turnover_of,
)
from backend.ml.research.walk_forward import (
    DAY_MS,
    HOUR_MS,
    Candidate,
    Grid,
    Pair,
    WalkForward,
    make_pairs,
    parse_date,
    predict_variants,
    select,
    tft_probs,
    use_tft,
)
from backend.risk.policy import RiskPolicy, load_policy
from backend.src.core.errors import EXIT_USAGE, UsageError
from backend.src.core.settings import REPO_ROOT, Settings, cli_path
from backend.src.market.candles import is_candle_file, symbol_of_file
from backend.src.models.ensemble_predictor import EnsembleConfig
from backend.src.models.feature_pipeline import infer_timeframe_ms, label_up, load_ohlcv
from backend.src.trading.simulator import SimResult
from backend.src.trading.strategies.base import Strategy
from backend.src.trading.strategies.baselines import BuyAndHold, SmaCrossover, TsMomentum
from backend.src.trading.strategies.decision import DecisionParams
from backend.src.trading.strategies.ensemble import decision_of

log = logging.getLogger(__name__)
DEFAULT_CONFIG = REPO_ROOT / "backend" / "ml" / "ensemble.yaml"
HOURLY_VAL_DAYS = 548.0  # a rise and a crash (2021-07 .. 2022-12 before a 2023 test): one regime chooses badly


def trade_report(p: Pair, ret: pd.Series, held: np.ndarray, sim: SimResult | None, costs: Costs,
                 n_trials: int) -> dict[str, Any]:
    per_day = DAY_MS / infer_timeframe_ms(p.df)
    entry: dict[str, Any] = dict(trading_metrics(ret, held, 365 * per_day, n_trials))
    entry.update(cost_report(entry, ret, cost_paid(sim, costs) if sim is not None else 0.0, per_day))
    if sim is not None:  # the share of the equity at work (a vol-targeted position is a fraction of it)
        entry["exposure"] = float(np.mean(np.abs(exposure_of(sim, p.df))))
        entry["turnover_per_year"] = turnover_of(sim) / max(len(ret) / per_day / 365, 1e-9)
    else:
        entry["turnover_per_year"] = 0.0
    entry["calendar"] = calendar_report(ret, 365 * per_day)
    return entry


def run_test(p: Pair, preds: dict[str, pd.DataFrame], decisions: dict[str, DecisionParams], horizon: int,
             costs: Costs, policy: RiskPolicy, n_trials: int, abstain: bool = False) -> dict[str, Any]:
    """Every strategy on one pair's test region, each traded by the engine's execution model at full
    exposure (a target of 1 = the whole equity); the ensemble also as the risk policy sizes it
    (``abstain``: nothing earned its costs on validation, so the models' strategies stay flat)."""
    sl = p.region("test")
    test_df = p.df.iloc[sl]
    y = label_up(p.df, horizon).to_numpy()[sl]
    report: dict[str, Any] = {"bars": len(test_df), "test_from_ms": int(test_df.index[0]),
                              "test_to_ms": int(test_df.index[-1]), "strategies": {}}
    curves = {}
    flat = (pd.Series(np.zeros(len(test_df)), index=test_df.index), np.zeros(len(test_df)), None)
    runs = [(name, pred, True) for name, pred in preds.items()] + [("ensemble_policy_sized", preds["ensemble"], False)]
    for name, pred, full in runs:
        decision = decisions[name if full else "ensemble"]
        ret, held, sim = flat if abstain else trade_predictions(test_df, pred, decision, p.symbol, costs, policy,
                                                                full=full)
        entry = trade_report(p, ret, held, sim, costs, n_trials if name.startswith("ensemble") else 1)
        entry.update(prediction_metrics(pred["prob_up"].to_numpy(), y, decision.threshold))
        report["strategies"][name], curves[name] = entry, ret
    tf_ms = infer_timeframe_ms(p.df)
    shorts = costs.perpetual
    baselines = {"buy_and_hold": trade(test_df, BuyAndHold(), p.symbol, costs, policy, full=True),
                 "sma_crossover": warm_baseline(p.df, sl.start, SmaCrossover(*sma_lengths(tf_ms), shorts), p.symbol,
                                                costs, policy),
                 "ts_momentum": warm_baseline(p.df, sl.start, ts_momentum(tf_ms, shorts), p.symbol, costs, policy),
                 "flat": flat}
    for name, (ret, held, sim) in baselines.items():
        report["strategies"][name], curves[name] = trade_report(p, ret, held, sim, costs, 1), ret
    report["curves"] = curves
    return report


def sma_lengths(tf_ms: int) -> tuple[int, int]:
    """The SMA crossover baseline's lengths: 1 h / 4 h over 5m candles, 1 day / 5 days over hourly ones."""
    return (24, 120) if tf_ms >= HOUR_MS else (12, 48)


def ts_momentum(tf_ms: int, shorts: bool = False) -> TsMomentum:
    """30 days' trend, 30 days' volatility, 30 % annualised target (a day of each over 5m candles)."""
    days = 30 if tf_ms >= HOUR_MS else 1
    n = int(days * DAY_MS // tf_ms)
    return TsMomentum(lookback=n, vol_window=n, vol_target=0.3, allow_short=shorts)


def warm_baseline(df: pd.DataFrame, start: int, strategy: Strategy, symbol: str, costs: Costs,
                  policy: RiskPolicy, *, full: bool = True) -> tuple[pd.Series, np.ndarray, SimResult]:
    """A rule baseline warmed on the candles before ``start``, traded from there (at full exposure, or as the
    risk policy sizes it)."""
    strategy.warmup(candles_of(df.iloc[max(0, start - strategy.warmup_candles):start]))
    return trade(df.iloc[start:], strategy, symbol, costs, policy, full=full)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="backtest", description=__doc__.splitlines()[0])
    ap.add_argument("--ohlcv-dir", type=cli_path, required=True)
    ap.add_argument("--pattern", default=None,
                    help="candle files to read, one timeframe (default: those of the timeframe most files have)")
    ap.add_argument("--holdout", type=float, default=0.25, help="the test region's share (without --test-start)")
    ap.add_argument("--market", choices=["spot", "perpetual"], default="spot",
                    help="perpetual: trade the candles as USDT-M perpetuals (long/short, funding at 0.01 %% per 8 h)")
    ap.add_argument("--test-start", default=None, metavar="YYYY-MM-DD",
                    help="the test region starts here (UTC); nothing before it sees it")
    ap.add_argument("--config", type=cli_path, default=DEFAULT_CONFIG, help="ensemble config (walk-forward)")
    ap.add_argument("--out", type=cli_path, default=None, help="report dir (default <data dir>/backtests)")
    ap.add_argument("--no-tft", action="store_true", help="leave the TFT out (it trains for a minute or two)")
    ap.add_argument("--val-days", type=float, default=None,
                    help="days before the test region whose folds choose the horizon and decision parameters "
                         "(default: 5 over 5m candles; 548, a year and a half, over hourly ones)")
    ap.add_argument("--strategy", default=None,
                    help="a built-in or installed strategy name, a *.levi.yaml file or a plugin package.module:Class: "
                         "backtest it instead of the walk-forward")
    ap.add_argument("--full", action="store_true",
                    help="with --strategy: the whole file from a flat start, as an engine replaying it (fills.csv)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="with --strategy: files backtested at once, one process each (default: the cores)")
    ap.add_argument("--engine-config", type=cli_path, default=None,
                    help="engine config (YAML) for the symbol: sizes, fees, slippage, stops, strategy params")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if not 0 < args.holdout < 1:
            raise UsageError("--holdout: must be between 0 and 1")
        if args.jobs < 1:
            raise UsageError(f"--jobs: must be at least 1, got {args.jobs}")
        if args.full and args.strategy is None and args.engine_config is None:
            raise UsageError("--full: needs --strategy or --engine-config (the strategy to replay)")
        settings = Settings()
        files = candle_files(args.ohlcv_dir, args.pattern)
        out = args.out or settings.data_dir / "backtests"
        out.mkdir(parents=True, exist_ok=True)
        if args.strategy is not None or args.full:
            from backend.ml.research.strategy_backtest import run  # noqa: PLC0415

            run(args, settings, files, out)
            return 0
        walk_forward(args, settings, files, out)
    except UsageError as exc:
        print(f"backtest: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def candle_files(directory: Path, pattern: str | None) -> list[Path]:
    """The candle files to backtest: those matching ``pattern``, else those of the timeframe most files in the
    directory have (a 5m directory with one 1m file backtests its 5m files; one line names what is left out)."""
    files = sorted(p for p in directory.glob(pattern or "*") if is_candle_file(p)) if directory.is_dir() else []
    if not files:
        raise UsageError(f"--ohlcv-dir: no files matching {pattern or '*'} in {directory}")
    if pattern is not None:
        return files
    tf_of = {p: p.stem.rsplit("-", 1)[-1] for p in files}
    counts = Counter(tf_of.values())
    chosen = max(counts, key=lambda tf: (counts[tf], tf))
    left = [p.name for p in files if tf_of[p] != chosen]
    if left:
        log.info("backtesting the %s files; left out (another timeframe, --pattern to choose): %s", chosen,
                 ", ".join(left))
    return [p for p in files if tf_of[p] == chosen]


def load_pairs(args: argparse.Namespace, files: list[Path]) -> tuple[dict[str, Pair], int, float]:
    """The pairs with their features and regions, their candle length, the validation span (days)."""
    frames = {f.stem: (symbol_of_file(f), load_ohlcv(f)) for f in files}
    timeframes = {k: infer_timeframe_ms(df) for k, (_s, df) in frames.items()}
    if len(set(timeframes.values())) > 1:
        raise UsageError(f"--pattern: the files mix timeframes ({', '.join(sorted(frames))}); choose one")
    tf_ms = next(iter(timeframes.values()))
    val_days = args.val_days if args.val_days is not None else (HOURLY_VAL_DAYS if tf_ms >= HOUR_MS else 5.0)
    test_start = parse_date(args.test_start, "--test-start") if args.test_start else None
    pairs = make_pairs(frames, args.holdout, val_days, int(DAY_MS // tf_ms), test_start)
    for k, p in pairs.items():
        if not 0 < p.val_start < p.test_start < len(p.df):
            raise UsageError(f"--test-start: {k} has no validation or test candles around {args.test_start}")
    return pairs, tf_ms, val_days


def walk_forward(args: argparse.Namespace, settings: Settings, files: list[Path], out: Path) -> dict[str, Any]:
    config = EnsembleConfig.load(args.config)
    policy, costs = load_policy(settings.risk_policy), Costs(perpetual=args.market == "perpetual")
    pairs, tf_ms, val_days = load_pairs(args, files)
    bars_per_day = int(DAY_MS // tf_ms)
    wf = WalkForward.for_timeframe(tf_ms, config.horizon)
    grid = Grid.for_timeframe(tf_ms, with_returns=config.returns is not None)
    use_tft_model = not args.no_tft and any(s.name == "tft" and s.weight > 0 for s in config.models)
    fold_seconds: list[float] = []
    summary: dict[str, Any] = {"tft_train_seconds": 0.0, "timeframe_ms": tf_ms, "val_days": val_days,
                               "fold_seconds": fold_seconds,
                               "schedule": {"retrain": wf.period or f"every {wf.test_bars} bars",
                                            "train_window": "expanding" if wf.train_bars is None else wf.train_bars,
                                            "purge_bars": "horizon + 1", "embargo_bars": wf.embargo}}
    t_start = time.monotonic()

    def predictions(which: str, cand: Candidate,
                    cfgs: dict[str, EnsembleConfig]) -> dict[str, dict[str, pd.DataFrame]]:
        """Per config, the predictions of the models one schedule trains (the first config fits them)."""
        schedule = cand.schedule(wf, bars_per_day) if tf_ms >= HOUR_MS else replace(wf, horizon=cand.horizon)
        return predict_variants(pairs, cfgs, schedule, which, fold_seconds)

    tft_params = next((s.params for s in config.models if s.name == "tft"), {})

    def train_tft(which: str) -> None:  # before the region it will score: it never sees its folds
        t0 = time.monotonic()
        use_tft(pairs, tft_probs(pairs, which, config.horizon, **tft_params))
        summary["tft_train_seconds"] += time.monotonic() - t0

    if use_tft_model:
        train_tft("val")
    val_preds: dict[tuple[int, bool, int | None], dict[str, pd.DataFrame]] = {}
    for h, days in dict.fromkeys((h, days) for h, _tft, days in grid.model_keys(use_tft_model)):
        cands = {str(tft): Candidate(h, config.threshold, config.edge, tft, train_days=days)
                 for tft in ((True, False) if use_tft_model else (False,))}  # the TFT's config holds every model
        preds = predictions("val", cands[str(use_tft_model)], {k: c.config(config) for k, c in cands.items()})
        val_preds |= {(h, cand.tft, days): preds[k] for k, cand in cands.items()}
    sel = select(pairs, config, grid, costs, policy, val_preds)
    chosen = sel.chosen or Candidate(config.horizon, config.threshold, config.edge, use_tft_model)
    log.info("validation: %d configurations tried; %s", sel.tried,
             f"chosen {chosen}" if sel.chosen else "none earned its costs: the ensemble stays flat on the test region")
    if use_tft_model:
        train_tft("test")
    ens_cfg = chosen.config(config)
    variants = {"ensemble": ens_cfg}
    if use_tft_model:
        variants["lgbm_only"] = replace(chosen, tft=False).config(config)
        variants["tft_only"] = replace(chosen, tft=True).config(config).only("tft")
    decisions = {k: decision_of(v) for k, v in variants.items()}
    full = replace(chosen, tft=True).config(config) if use_tft_model else ens_cfg  # every model, fitted once
    test_preds = predictions("test", chosen, {"all": full, **variants})
    if tf_ms >= HOUR_MS:  # the window the validation folds chose
        summary["schedule"]["train_window"] = "expanding" if chosen.train_days is None else f"{chosen.train_days} days"
    summary["selection"] = {"chosen": sel.chosen.__dict__ if sel.chosen else None, "tried": sel.tried,
                            "max_changes_per_5_days": grid.max_changes_per_5_days, "scores": sel.scores}
    all_curves: dict[str, list[pd.Series]] = {}
    for k, p in pairs.items():
        rep = run_test(p, {v: test_preds[v][k] for v in variants}, decisions, chosen.horizon, costs, policy,
                       max(sel.tried, 1), abstain=sel.chosen is None)
        curves = rep.pop("curves")
        plot(curves, k, out / f"{k}.png")
        for name, ret in curves.items():
            all_curves.setdefault(name, []).append(ret)
        summary[k] = rep
        log.info("%s: %s", k, " | ".join(f"{n} ret {v['total_return']:+.4f} sharpe {v['sharpe']:.2f} "
                                          f"dd {v['max_drawdown']:.3f}" for n, v in rep["strategies"].items()))
    summary["mean_over_pairs"] = mean_over_pairs({k: v for k, v in summary.items() if k in pairs})
    mean_curves = {name: pd.concat(rs, axis=1).sort_index().fillna(0.0).mean(axis=1) for name, rs in all_curves.items()}
    plot(mean_curves, f"equal-weight portfolio of {len(pairs)} pairs, test region", out / "mean.png")
    per_year = 365 * bars_per_day
    summary["equal_weight_portfolio"] = {name: {**trading_metrics(r, np.ones(len(r)), per_year),
                                                "calendar": calendar_report(r, per_year)}
                                         for name, r in mean_curves.items()}
    for name, m in summary["mean_over_pairs"].items():
        log.info("MEAN %-22s %s", name, " ".join(f"{k} {v:.4f}" for k, v in m.items()))
    for name, m in summary["equal_weight_portfolio"].items():
        log.info("PORTFOLIO %-17s ret %+.4f sharpe %.2f max_dd %.3f", name, m["total_return"], m["sharpe"],
                 m["max_drawdown"])
    summary["seconds"] = time.monotonic() - t_start
    (out / "report.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


if __name__ == "__main__":
    sys.exit(main())
