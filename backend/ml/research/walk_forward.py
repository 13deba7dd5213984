"""The pooled walk-forward: one model for every pair, retrained on the past only before each fold, with
the decision parameters chosen on validation folds that precede the test region.

Regions per pair: ``[.. val_start)`` history only, ``[val_start, test_start)`` validation folds,
``[test_start, ..)`` the test region that nothing is chosen on. Two schedules (``WalkForward.for_timeframe``):

- 5-minute candles (days of data): day-long folds, a rolling 10-day training window;
- hourly candles (years of data): one fold per calendar month, retrained before each on everything before it
  (an expanding window) or on the last year (the validation folds choose), the last ``horizon + 1`` bars
  purged (their labels reach into the fold) and ``embargo`` more dropped (the serial correlation of the
  features).

Each fold's model is trained on every pair's rows (pooled, ordered by time; the features are returns,
ratios and volatility-normalised values, comparable across pairs — per-pair normalisation by construction).
Every candidate of the selection grid is traded on the validation folds through the engine's decision rule,
sizer and trader; the best mean Sharpe among those within the turnover budget that earn their costs wins,
and none (the ensemble stays flat) when no candidate earns its costs there.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from backend.ml.research.backtest_metrics import position_changes, sharpe
from backend.ml.research.trade_sim import Costs, trade_predictions
from backend.risk.policy import RiskPolicy
from backend.src.core.errors import UsageError
from backend.src.core.progress import Progress
from backend.src.models.base import TFT_COLUMN, Model, Precomputed
from backend.src.models.ensemble_predictor import FEATURE_SETS, EnsembleConfig, EnsemblePredictor
from backend.src.models.feature_pipeline import build, forward_return, infer_timeframe_ms
from backend.src.models.multi_tf import market_context
from backend.src.models.tft import TFTModel
from backend.src.trading.strategies.ensemble import decision_of

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MIN_TRAIN_ROWS = 1000  # a fold whose past is shorter has no model: its pairs stay without an opinion


@dataclass(frozen=True)
class WalkForward:
    train_bars: int | None = 2880  # rolling window: 10 days of 5m (None: expanding, everything before the fold)
    test_bars: int = 288  # fold length when ``period`` is None: one day of 5m
    horizon: int = 12
    period: str | None = None  # "month": one fold per calendar month
    embargo: int = 0  # bars dropped between the purged training window and the fold
    stride: int = 1  # every stride-th training row (0: one per day of the label horizon; long labels overlap)

    @classmethod
    def for_timeframe(cls, timeframe_ms: int, horizon: int) -> WalkForward:
        if timeframe_ms >= HOUR_MS:
            bars_per_day = DAY_MS // timeframe_ms
            return cls(train_bars=None, test_bars=30 * bars_per_day, horizon=horizon, period="month",
                       embargo=bars_per_day, stride=0)
        bars_per_day = DAY_MS // timeframe_ms
        return cls(train_bars=10 * bars_per_day, test_bars=bars_per_day, horizon=horizon)

    @property
    def step(self) -> int:
        """Training rows kept: every ``stride``-th, or (0) one per 24 bars of the horizon, so a week-long label's
        168 near-copies cost one fit of 7 (each row still sees every bar through its features)."""
        return self.stride or max(1, self.horizon // 24)

    def folds(self, start: int, end: int, index: np.ndarray | None = None) -> list[tuple[slice, slice]]:
        return [(tr, te) for _key, tr, te in self.keyed_folds(start, end, index)]

    def keyed_folds(self, start: int, end: int, index: np.ndarray | None = None) -> list[tuple[int, slice, slice]]:
        """(key, training rows, test rows) per fold; ``key`` lines the pairs' folds up (a month's start, ms)."""
        if self.period == "month":
            if index is None:
                raise ValueError("monthly folds need the bars' timestamps")
            months = np.asarray(index[start:end], dtype="datetime64[ms]").astype("datetime64[M]")
            cuts = [start + int(i) for i in np.flatnonzero(np.diff(months.astype(np.int64))) + 1]
            starts = [start, *cuts] if end > start else []
            keys = [int(months[t - start].astype("datetime64[ms]").astype(np.int64)) for t in starts]
        else:
            starts = list(range(start, end, self.test_bars))
            keys = list(range(len(starts)))
        out = []
        for i, (key, t) in enumerate(zip(keys, starts, strict=True)):
            stop = starts[i + 1] if i + 1 < len(starts) else end
            train_end = max(0, t - self.horizon - 1 - self.embargo)  # purge: these labels look into the fold
            lo = 0 if self.train_bars is None else max(0, train_end - self.train_bars)
            out.append((key, slice(lo, train_end, self.step if self.step > 1 else None), slice(t, stop)))
        return out


@dataclass
class Pair:
    symbol: str
    df: pd.DataFrame
    feats: pd.DataFrame
    val_start: int
    test_start: int

    def region(self, which: str) -> slice:
        return slice(self.val_start, self.test_start) if which == "val" else slice(self.test_start, len(self.df))


def make_pairs(frames: dict[str, tuple[str, pd.DataFrame]], holdout: float, val_days: float,
               bars_per_day: int, test_start_ms: int | None = None) -> dict[str, Pair]:
    """Features (with cross-pair context when there are several pairs) and regions per pair: the test region
    from ``test_start_ms`` (else the final ``holdout`` share), the ``val_days`` before it for validation."""
    context = market_context({k: df for k, (_s, df) in frames.items()}) if len(frames) > 1 else {}
    pairs = {}
    for name, (symbol, df) in frames.items():
        if test_start_ms is not None:
            test_start = int(df.index.searchsorted(test_start_ms))
            val_start = max(bars_per_day, int(df.index.searchsorted(test_start_ms - int(val_days * DAY_MS))))
        else:
            test_start = int(len(df) * (1 - holdout))
            val_start = max(bars_per_day, test_start - int(val_days * bars_per_day))
        pairs[name] = Pair(symbol, df, build(df, context=context.get(name)), val_start, test_start)
    return pairs


def tft_probs(pairs: dict[str, Pair], which: str, horizon: int, **params: Any) -> dict[str, np.ndarray]:
    """One TFT across the pairs, trained on every pair's bars before ``which`` region (the label
    horizon purged); its causal P(up) for every bar of every pair."""
    parts = [p.feats.iloc[: p.region(which).start - horizon - 1].assign(symbol=k) for k, p in pairs.items()]
    tft = TFTModel(list(FEATURE_SETS["price_history"]), **params).fit(pd.concat(parts), pd.Series(dtype=float))
    return {k: tft.predict_proba(p.feats) for k, p in pairs.items()}


def use_tft(pairs: dict[str, Pair], probs: dict[str, np.ndarray]) -> None:
    """The TFT's probabilities as the pairs' ``tft_prob`` column, which the folds' models read."""
    for k, p in pairs.items():
        p.feats[TFT_COLUMN] = probs[k]


@dataclass(frozen=True)
class Candidate:
    horizon: int
    threshold: float
    edge: float
    tft: bool
    vol_target: float = 0.0  # 0: every position the whole target (the sizing's other choice: volatility targeting)
    train_days: int | None = None  # the training window: None expanding (everything before the fold), else rolling

    @property
    def models_key(self) -> tuple[int, bool, int | None]:
        """What the fold models depend on (the rest is the decision layer's, traded on their predictions)."""
        return self.horizon, self.tft, self.train_days

    def schedule(self, wf: WalkForward, bars_per_day: int) -> WalkForward:
        return replace(wf, horizon=self.horizon,
                       train_bars=None if self.train_days is None else self.train_days * bars_per_day)

    def config(self, base: EnsembleConfig) -> EnsembleConfig:
        cfg = base if self.tft else base.without("tft")
        sized = self.vol_target > 0
        return cfg.model_copy(update={"horizon": self.horizon, "threshold": self.threshold,
                                      "exit_threshold": min(base.exit_threshold, self.threshold),
                                      "min_hold": self.horizon // 2, "edge": self.edge, "vol_target": self.vol_target,
                                      "kelly_cap": base.kelly_cap if sized and base.returns is not None else 0.0})


@dataclass(frozen=True)
class Grid:
    horizons: tuple[int, ...] = (12, 24)
    thresholds: tuple[float, ...] = (0.5, 0.55, 0.6)
    edges: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    vol_targets: tuple[float, ...] = (0.0,)
    train_windows: tuple[int | None, ...] = (None,)  # days (None: expanding); 5m keeps the schedule's own
    max_changes_per_5_days: float = 10.0

    @classmethod
    def for_timeframe(cls, timeframe_ms: int, with_returns: bool) -> Grid:
        """Hourly: horizons of a day to a week, volatility targeting or whole positions."""
        if timeframe_ms >= HOUR_MS:
            return cls(horizons=(24, 72, 168), thresholds=(0.5, 0.55), edges=(0.0, 1.0) if with_returns else (0.0,),
                       vol_targets=(0.0, 0.3), train_windows=(None, 365))
        return cls() if with_returns else cls(edges=(0.0,))

    def candidates(self, with_tft: bool) -> list[Candidate]:
        return [Candidate(h, t, e, tft, v, w) for h, t, e, tft, v, w in
                itertools.product(self.horizons, self.thresholds, self.edges, (False, True) if with_tft else (False,),
                                  self.vol_targets, self.train_windows)]

    def model_keys(self, with_tft: bool) -> list[tuple[int, bool, int | None]]:
        """The distinct fold models the candidates need (each is trained over the validation folds once)."""
        return list(dict.fromkeys(c.models_key for c in self.candidates(with_tft)))


def fold_models(config: EnsembleConfig, timeframe_ms: int) -> dict[str, Model]:
    """Fresh models for one fold; the TFT (trained once, before the region) is read from its column."""
    models = EnsemblePredictor(config, timeframe_ms=timeframe_ms).models
    if "tft" in models:
        models["tft"] = Precomputed()
    return models


def predict_pooled(pairs: dict[str, Pair], config: EnsembleConfig, wf: WalkForward,
                   which: str, timings: list[float] | None = None) -> dict[str, pd.DataFrame]:
    """Walk-forward predictions of one config over a region of every pair: before each fold, one
    model trained on every pair's past (ordered by time: calibration uses the latest rows);
    ``timings`` gets each fold's seconds (training and predicting)."""
    return predict_variants(pairs, {"": config}, wf, which, timings)[""]


def predict_variants(pairs: dict[str, Pair], configs: dict[str, EnsembleConfig], wf: WalkForward, which: str,
                     timings: list[float] | None = None) -> dict[str, dict[str, pd.DataFrame]]:
    """``predict_pooled`` for several configs over the same models (e.g. with and without the TFT's vote): each
    fold's models are fitted once, for the first config, which must hold every model the others use; the
    others fuse them by their own weights and are calibrated on the same rows."""
    first = next(iter(configs.values()))
    folds = {k: {key: (tr, te) for key, tr, te in wf.keyed_folds(p.region(which).start, p.region(which).stop,
                                                                  p.df.index.to_numpy())}
             for k, p in pairs.items()}
    parts: dict[str, dict[str, list[pd.DataFrame]]] = {v: {k: [] for k in pairs} for v in configs}
    targets = {k: forward_return(p.df, wf.horizon) for k, p in pairs.items()}
    tf_ms = infer_timeframe_ms(next(iter(pairs.values())).df)
    keys = sorted(set().union(*(f.keys() for f in folds.values())))
    window = "expanding" if wf.train_bars is None else f"rolling {wf.train_bars} bars"
    progress = Progress(len(keys), f"{which} folds, horizon {wf.horizon}, {window}", unit="fold")
    for key in keys:
        t0 = time.monotonic()
        live = [k for k in pairs if key in folds[k]]
        x = pd.concat([pairs[k].feats.iloc[folds[k][key][0]] for k in live])
        y = pd.concat([targets[k].iloc[folds[k][key][0]] for k in live])
        order = np.argsort(x.index.to_numpy(), kind="stable")
        x, y = x.iloc[order], y.iloc[order]
        model = EnsemblePredictor(first, fold_models(first, tf_ms), timeframe_ms=tf_ms)
        if len(x) >= MIN_TRAIN_ROWS:
            model.fit(x, y)
        for name, cfg in configs.items():
            m = model if cfg is first or len(x) < MIN_TRAIN_ROWS else model.variant(cfg, x, y)
            for k in live:
                parts[name][k].append(m.predict(pairs[k].feats.iloc[folds[k][key][1]]))
        spent = time.monotonic() - t0
        if timings is not None:
            timings.append(spent)
        progress.update(note=f"{fold_name(key, wf)}: {len(x):,} rows, {spent:.1f}s")
    progress.close()
    return {name: {k: pd.concat(v) for k, v in per.items()} for name, per in parts.items()}


def fold_name(key: int, wf: WalkForward) -> str:
    if wf.period == "month":
        return str(np.datetime64(key, "ms").astype("datetime64[M]"))
    return f"fold {key + 1}"


@dataclass
class Selection:
    chosen: Candidate | None
    scores: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tried(self) -> int:
        return len(self.scores)


def score_candidate(pairs: dict[str, Pair], preds: dict[str, pd.DataFrame], cfg: EnsembleConfig, costs: Costs,
                    policy: RiskPolicy) -> tuple[float, float, float]:
    """(mean Sharpe, mean net return, mean position changes per pair per 5 days) on the validation region."""
    sharpes, rets, changes = [], [], []
    for k, p in pairs.items():
        sl = p.region("val")
        ret, held, _ = trade_predictions(p.df.iloc[sl], preds[k], decision_of(cfg), p.symbol, costs, policy)
        bar_ms = infer_timeframe_ms(p.df)
        sharpes.append(sharpe(ret.to_numpy(), 365 * DAY_MS / bar_ms))
        rets.append(float(np.prod(1 + ret.to_numpy()) - 1))
        days = len(ret) * bar_ms / DAY_MS
        changes.append(position_changes(held) * 5 / max(days, 1e-9))
    return float(np.mean(sharpes)), float(np.mean(rets)), float(np.mean(changes))


def select(pairs: dict[str, Pair], base: EnsembleConfig, grid: Grid, costs: Costs, policy: RiskPolicy,
           val_preds: dict[tuple[int, bool, int | None], dict[str, pd.DataFrame]]) -> Selection:
    """Every candidate traded on the validation folds; the best mean Sharpe within the turnover budget among
    those that earn more than their costs (net return > 0), else none."""
    sel = Selection(None)
    best: tuple[float, float] | None = None
    cands = grid.candidates(with_tft=any(key[1] for key in val_preds))
    progress = Progress(len(cands), "validation: candidates traded", unit="candidate")
    for cand in cands:
        sr, net, changes = score_candidate(pairs, val_preds[cand.models_key], cand.config(base), costs, policy)
        sel.scores.append({**cand.__dict__, "val_sharpe": sr, "val_net_return": net,
                           "val_changes_per_5_days": changes})
        progress.update(note=f"h {cand.horizon} p {cand.threshold} edge {cand.edge} tft {int(cand.tft)} "
                             f"vol {cand.vol_target} window {cand.train_days or 'all'}: sharpe {sr:.2f}")
        if changes > grid.max_changes_per_5_days or net <= 0:
            continue
        if best is None or (sr, -changes) > best:
            best, sel.chosen = (sr, -changes), cand
    progress.close()
    return sel


def parse_date(value: str, name: str) -> int:
    try:
        return int(datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)
    except ValueError:
        raise UsageError(f"{name}: expected YYYY-MM-DD, got {value!r}") from None
