"""Optuna tuning of the ensemble on a walk-forward backtest.

``python -m backend.ml.auto_tuner --symbol BTCUSDT --start-date 2023-01-01 --end-date 2024-10-01
--trials 100 --objective sharpe [--data-dir DIR | --ohlcv-dir DIR] [--storage redis://...]``

The date range is split: the final ``--test-share`` (25 %) is the test window, never seen by
a trial; trials are scored on day-long walk-forward folds at the end of the rest, one pooled model
for all symbols retrained before each fold (after-cost Sharpe minus ``--turnover-penalty`` ×
position changes per day; max drawdown as a constraint). A trial chooses the label horizon (1 h,
2 h, 4 h), the models' weights and sizes, and the decision layer (entry threshold, cost edge,
minimum hold). The best parameters are then
evaluated once on the test window (deflated Sharpe counting every trial), refit on the whole
range and saved as a new version in the model registry (not promoted: the validation gate
does that). TFT forecasts depend only on its hidden size, so each size is trained once and
its probabilities cached across trials.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from backend.ml.research.backtest import run_test
from backend.ml.research.backtest_metrics import mean_over_pairs, trading_metrics
from backend.ml.research.trade_sim import Costs, trade_predictions
from backend.ml.research.walk_forward import (
    DAY_MS,
    HOUR_MS,
    WalkForward,
    make_pairs,
    parse_date,
    predict_pooled,
    tft_probs,
    use_tft,
)
from backend.risk.policy import RiskPolicy, load_policy
from backend.src.core.errors import EXIT_USAGE, UsageError
from backend.src.core.settings import cli_path, cli_settings
from backend.src.market.candles import is_candle_file
from backend.src.models.base import TFT_COLUMN
from backend.src.models.ensemble_predictor import EnsembleConfig, EnsemblePredictor, ModelSpec
from backend.src.models.feature_pipeline import find_file, forward_return, infer_timeframe_ms, load_ohlcv
from backend.src.models.registry import Registry
from backend.src.trading.strategies.ensemble import decision_of

log = logging.getLogger(__name__)
TFT_SIZES = (32, 64, 128)
HORIZONS = (12, 24, 48)  # bars: 1 h, 2 h, 4 h of 5m candles; 12 h, 1 and 2 days of hourly ones
VOL_TARGETS = (0.0, 0.2, 0.3, 0.5)  # annualised; 0: every position the whole target


def only_timeframe(ohlcv_dir: Path, symbol: str) -> str:
    """The timeframe of the symbol's candle files when there is one (``--timeframe`` otherwise)."""
    norm = symbol.replace("/", "").replace("_", "").upper()
    files = [p for p in (ohlcv_dir.iterdir() if ohlcv_dir.is_dir() else []) if is_candle_file(p) and "-" in p.stem]
    found = sorted({tf for name, tf in (p.stem.rsplit("-", 1) for p in files) if name.replace("_", "").upper() == norm})
    if not found:
        raise UsageError(f"--symbol: no candles for {symbol} in {ohlcv_dir}")
    if len(found) > 1:
        raise UsageError(f"--timeframe: {symbol} has {', '.join(found)} candle files in {ohlcv_dir}; say which")
    return found[0]


def load_range(path: Path, start_ms: int, end_ms: int) -> pd.DataFrame:
    df = load_ohlcv(path)
    if df.index[-1] < end_ms - infer_timeframe_ms(df):
        last = datetime.fromtimestamp(df.index[-1] / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        log.warning("--end-date: %s ends %s UTC; using the candles that exist up to then", path.name, last)
    sel = df.loc[(df.index >= start_ms) & (df.index < end_ms)]
    if len(sel) < 2000:
        first, last = (datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %H:%M") for t in
                       (df.index[0], df.index[-1]))
        raise UsageError(f"--start-date/--end-date: only {len(sel)} candles in that range (need 2000); "
                         f"{path.name} covers {first} .. {last} UTC")
    return sel


class Tuner:
    """Tunes one ensemble configuration for all the given symbols (one pooled model, as in
    production) on the validation folds before the test window. A trial's value is the mean
    after-cost Sharpe over the symbols minus ``turnover_penalty`` × position changes per day."""

    def __init__(self, frames: dict[str, pd.DataFrame], *, test_share: float, costs: Costs, policy: RiskPolicy,
                 max_dd: float, objective: str, tft_epochs: int, tft_samples: int = 20000,
                 val_days: float | None = None, holdout_bars: int = 0, turnover_penalty: float = 0.5,
                 tft_sizes: tuple[int, ...] = TFT_SIZES) -> None:
        first = next(iter(frames.values()))
        self.tf_ms = tf_ms = infer_timeframe_ms(first)
        self.bars_per_day = int(DAY_MS // tf_ms)
        self.wf = WalkForward.for_timeframe(tf_ms, 12)  # hourly: monthly folds on an expanding window
        if val_days is None:  # four validation folds: days of 5m candles, months of hourly ones
            val_days = 120 if tf_ms >= HOUR_MS else 4
        self.costs, self.policy, self.max_dd, self.objective = costs, policy, max_dd, objective
        self.tft_epochs, self.tft_samples, self.holdout_bars = tft_epochs, tft_samples, holdout_bars
        self.turnover_penalty, self.tft_sizes = turnover_penalty, tft_sizes
        self.tft_cache: dict[int, dict[str, np.ndarray]] = {}
        self.pairs = make_pairs({k: (k, df) for k, df in frames.items()}, test_share, val_days, self.bars_per_day)
        self.per_year = 365 * DAY_MS / tf_ms
        self.kelly_cap = policy.position_sizing.kelly_fraction  # the sprint plan's Kelly fraction, as a cap

    def use_tft(self, hidden: int) -> None:
        """One TFT of this size, trained once on every symbol's bars before validation (cached per
        size), as the pairs' ``tft_prob`` column."""
        if hidden not in self.tft_cache:
            t0 = time.monotonic()
            self.tft_cache[hidden] = tft_probs(self.pairs, "val", self.wf.horizon, **self.tft_params(hidden))
            log.info("tft hidden %d trained and cached in %.0fs", hidden, time.monotonic() - t0)
        use_tft(self.pairs, self.tft_cache[hidden])

    def tft_params(self, hidden: int) -> dict[str, Any]:
        return {"hidden_size": hidden, "epochs": self.tft_epochs, "max_train_samples": self.tft_samples}

    def config(self, p: dict[str, Any]) -> EnsembleConfig:
        lgbm = {"max_depth": p["lgbm_max_depth"], "learning_rate": p["lgbm_learning_rate"],
                "n_estimators": 200, "min_child_samples": 200, "reg_lambda": 5.0}
        return EnsembleConfig(models=[
            ModelSpec(name="lgbm", weight=p["w_lgbm"], features="multi_tf", params=lgbm),
            ModelSpec(name="tft", weight=p["w_tft"], features="price_history",
                      params=self.tft_params(p["tft_hidden_size"])),
            ModelSpec(name="sentiment", weight=p["w_sentiment"], features=["news_score", "social_score"]),
        ], returns=ModelSpec(name="lgbm_quantiles", features="multi_tf", params=lgbm),
            horizon=p["horizon"], threshold=p["threshold"], exit_threshold=0.5, min_hold=p["min_hold"], edge=p["edge"],
            vol_target=p.get("vol_target", 0.0), kelly_cap=self.kelly_cap if p.get("vol_target") else 0.0)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {"horizon": trial.suggest_categorical("horizon", list(HORIZONS)),
                "lgbm_max_depth": trial.suggest_int("lgbm_max_depth", 3, 7),
                "lgbm_learning_rate": trial.suggest_float("lgbm_learning_rate", 0.01, 0.1, log=True),
                "tft_hidden_size": trial.suggest_categorical("tft_hidden_size", list(self.tft_sizes)),
                "w_lgbm": trial.suggest_float("w_lgbm", 0.05, 1.0),
                "w_tft": trial.suggest_categorical("w_tft", [0.0, 0.15, 0.3, 0.5]),
                "w_sentiment": trial.suggest_float("w_sentiment", 0.0, 1.0),
                "threshold": trial.suggest_float("threshold", 0.5, 0.7),
                "edge": trial.suggest_float("edge", 0.0, 3.0),
                "min_hold": trial.suggest_int("min_hold", 0, 48),
                "vol_target": trial.suggest_categorical("vol_target", list(VOL_TARGETS))}

    def score(self, cfg: EnsembleConfig, preds: dict[str, pd.DataFrame]) -> tuple[float, float, float]:
        """(objective value, worst drawdown, mean position changes per day) on the validation folds."""
        values, dds, changes = [], [], []
        for k, pair in self.pairs.items():
            sl = pair.region("val")
            ret, held, _ = trade_predictions(pair.df.iloc[sl], preds[k], decision_of(cfg), k, self.costs, self.policy)
            m = trading_metrics(ret, held, self.per_year)
            values.append(m["sortino"] if self.objective == "sortino" else m["sharpe"])
            dds.append(m["max_drawdown"])
            changes.append(m["position_changes"] * self.bars_per_day / max(len(ret), 1))
        per_day = float(np.mean(changes))
        return float(np.mean(values)) - self.turnover_penalty * per_day, float(np.max(dds)), per_day

    def __call__(self, trial: optuna.Trial) -> float:
        p = self.suggest(trial)
        cfg = self.config(p)
        if p["w_tft"] > 0:
            self.use_tft(p["tft_hidden_size"])
        preds = predict_pooled(self.pairs, cfg, replace(self.wf, horizon=p["horizon"]), "val")
        value, dd, per_day = self.score(cfg, preds)
        trial.set_constraint("max_drawdown", dd - self.max_dd)
        trial.set_user_attr("max_drawdown", dd)
        trial.set_user_attr("changes_per_day", per_day)
        return value

    def evaluate(self, p: dict[str, Any], n_trials: int) -> dict[str, Any]:
        """The best parameters, once, on every symbol's test window (walk-forward, retrained per day)."""
        cfg = self.config(p)
        if p["w_tft"] > 0:
            self.use_tft(p["tft_hidden_size"])  # trained before validation: it never saw the test window
        decisions = {"ensemble": decision_of(cfg), "lgbm_only": decision_of(cfg)}
        variants = {"ensemble": cfg, "lgbm_only": cfg.only("lgbm")}
        preds = {k: predict_pooled(self.pairs, v, replace(self.wf, horizon=p["horizon"]), "test")
                 for k, v in variants.items()}
        out: dict[str, Any] = {}
        for sym, pair in self.pairs.items():
            rep = run_test(pair, {v: preds[v][sym] for v in variants}, decisions, p["horizon"], self.costs,
                           self.policy, n_trials)
            rep.pop("curves")
            out[sym] = rep
        return out

    def final_model(self, p: dict[str, Any]) -> EnsemblePredictor:
        """One model for every symbol, refit on the most recent data (minus the held-out bars
        the validation gate will judge it on), for production."""
        cfg = self.config(p)
        model = EnsemblePredictor(cfg if p["w_tft"] > 0 else cfg.without("tft"), timeframe_ms=self.tf_ms)
        xs, ys = [], []
        for sym, pair in self.pairs.items():
            end = len(pair.df) - self.holdout_bars - p["horizon"] - 1
            tail = slice(0 if self.wf.train_bars is None else max(0, end - self.wf.train_bars), end)
            xs.append(pair.feats.drop(columns=[TFT_COLUMN], errors="ignore").iloc[tail].assign(symbol=sym))
            ys.append(forward_return(pair.df, p["horizon"]).iloc[tail])
        x, y = pd.concat(xs), pd.concat(ys)
        order = np.argsort(x.index.to_numpy(), kind="stable")  # by time: calibration uses the latest 20 %
        return model.fit(x.iloc[order], y.iloc[order])


def build_study(name: str, seed: int, storage: str | None) -> optuna.Study:
    store: Any = None
    if storage:
        if not storage.startswith(("redis://", "rediss://", "unix://")):
            raise UsageError(f"--storage: expected a redis:// URL, got {storage!r}")
        from optuna.storages.journal import JournalRedisBackend, JournalStorage  # noqa: PLC0415

        store = JournalStorage(JournalRedisBackend(storage))
    # the drawdown constraint: each trial sets it (Trial.set_constraint), the sampler reads it from there
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=15)
    return optuna.create_study(study_name=name, storage=store, direction="maximize", sampler=sampler,
                               load_if_exists=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="auto_tuner", description=__doc__.splitlines()[0])
    ap.add_argument("--symbol", required=True, help="one symbol, or several comma-separated (one model for all)")
    ap.add_argument("--start-date", required=True)
    ap.add_argument("--end-date", required=True)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--objective", choices=["sharpe", "sortino"], default="sharpe")
    ap.add_argument("--timeframe", default=None, help="the candles' (default: the only one the directory has)")
    ap.add_argument("--data-dir", type=cli_path, default=None)
    ap.add_argument("--ohlcv-dir", type=cli_path, default=None, help="default <data dir>/ohlcv")
    ap.add_argument("--storage", default=None, help="redis:// URL: share the study through Optuna's journal")
    ap.add_argument("--study-name", default=None)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--test-share", type=float, default=0.25)
    ap.add_argument("--max-drawdown", type=float, default=0.12)
    ap.add_argument("--turnover-penalty", type=float, default=0.5,
                    help="objective minus this x position changes per day (Sharpe units)")
    ap.add_argument("--tft-epochs", type=int, default=1)
    ap.add_argument("--tft-samples", type=int, default=20000, help="training windows per TFT fit")
    ap.add_argument("--tft-sizes", default=",".join(map(str, TFT_SIZES)),
                    help="the TFT hidden sizes searched, comma-separated (each one is trained once per run)")
    ap.add_argument("--holdout-days", type=float, default=0.0,
                    help="days at the end the saved model is NOT trained on (the validation gate judges it there)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for noisy in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        if args.trials < 1:
            raise UsageError("--trials: must be at least 1")
        if not 0.05 <= args.test_share <= 0.5:
            raise UsageError("--test-share: must be between 0.05 and 0.5")
        start, end = parse_date(args.start_date, "--start-date"), parse_date(args.end_date, "--end-date")
        if end <= start:
            raise UsageError("--end-date: must be after --start-date")
        parts = args.tft_sizes.split(",")
        tft_sizes = tuple(int(x) for x in parts if x.strip().isdigit())
        if not tft_sizes or len(tft_sizes) != len(parts) or not all(4 <= x <= 512 for x in tft_sizes):
            raise UsageError(f"--tft-sizes: expected hidden sizes 4..512, comma-separated, got {args.tft_sizes!r}")
        settings = cli_settings(args.data_dir)
        symbols = [x.strip().upper() for x in args.symbol.split(",") if x.strip()]
        if not symbols:
            raise UsageError("--symbol: empty")
        ohlcv = args.ohlcv_dir or settings.data_dir / "ohlcv"
        timeframe = args.timeframe or only_timeframe(ohlcv, symbols[0])
        paths = {sym: find_file(ohlcv, sym, timeframe) for sym in symbols}
        frames = {sym: load_range(p, start, end) for sym, p in paths.items()}
        policy = load_policy(settings.risk_policy)
        holdout_bars = int(args.holdout_days * 86400_000 / infer_timeframe_ms(next(iter(frames.values()))))
        tuner = Tuner(frames, test_share=args.test_share, costs=Costs(), policy=policy, max_dd=args.max_drawdown,
                      objective=args.objective, tft_epochs=args.tft_epochs, tft_samples=args.tft_samples,
                      holdout_bars=holdout_bars, turnover_penalty=args.turnover_penalty, tft_sizes=tft_sizes)
        name = args.study_name or f"levibot-{args.symbol}-{args.start_date}-{args.end_date}-{args.objective}"
        study = build_study(name, args.seed, args.storage)
        t0 = time.monotonic()
        study.optimize(tuner, n_trials=args.trials, show_progress_bar=sys.stderr.isatty())  # a bar on terminals only
        wall = time.monotonic() - t0
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        done = [t for t in study.trials if t.state in states]
        feasible = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
                    and t.user_attrs.get("max_drawdown", 1.0) <= args.max_drawdown]
        best = max(feasible or [study.best_trial], key=lambda t: t.value or -math.inf)
        log.info("%d trials (%d pruned) in %.0fs; best validation %s %.3f: %s", len(done),
                 sum(t.state == optuna.trial.TrialState.PRUNED for t in done), wall, args.objective,
                 best.value or 0.0, best.params)
        report = tuner.evaluate(best.params, n_trials=len(done))
        means = mean_over_pairs(report)
        ens, bh, sma = (means[k] for k in ("ensemble", "buy_and_hold", "sma_crossover"))
        nan = float("nan")
        log.info("test window (never seen while tuning), mean over %d symbols: return %.4f (buy&hold %.4f), "
                 "sharpe %.2f (deflated p %.2f), dd %.3f, %.1f position changes, acc %.3f (majority %.3f), "
                 "top-20%% accuracy %.3f; buy&hold sharpe %.2f, sma %.2f", len(symbols), ens["total_return"],
                 bh["total_return"], ens["sharpe"], ens["deflated_sharpe_prob"], ens["max_drawdown"],
                 ens["position_changes"], ens.get("accuracy", nan), ens.get("majority_rate", nan),
                 ens.get("selective_accuracy_top20", nan), bh["sharpe"], sma["sharpe"])
        if not args.no_save:
            model = tuner.final_model(best.params)
            meta = {"symbols": symbols, "timeframe": timeframe, "sources": [p.name for p in paths.values()],
                    "data_range": [args.start_date, args.end_date], "holdout_bars": holdout_bars,
                    "objective": args.objective, "validation_value": best.value, "n_trials": len(done),
                    "tuning_seconds": wall, "hyperparams": best.params, "backtest_sharpe": ens["sharpe"],
                    "backtest_win_rate": ens["win_rate"], "backtest_max_drawdown": ens["max_drawdown"],
                    "accuracy": ens["accuracy"], "test_report": report}
            version = Registry(settings.data_dir / "models").save(model.save, meta)
            log.info("saved %s (not promoted; python -m backend.src.models.registry promote %s)", version, version)
            print(version)
    except UsageError as exc:
        print(f"auto_tuner: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
