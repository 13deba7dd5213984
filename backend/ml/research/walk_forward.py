"""The pooled walk-forward: one model for every pair, retrained before each day-long fold on the
past only, with the decision parameters chosen on validation folds that precede the test region.

Regions per pair: ``[.. val_start)`` history only, ``[val_start, test_start)`` validation folds,
``[test_start, ..)`` the test region (the final ``holdout`` share) that nothing is chosen on. Before
each fold the models are trained on the previous ``train_bars`` of every pair (pooled, features
normalised where scales differ), the last ``horizon + 1`` bars purged (their labels reach into the
fold). Every candidate of the selection grid is traded on the validation folds through the engine's
decision rule, sizer and trader; the best mean net return among those within the turnover budget
wins, and none (the ensemble stays flat) when no candidate earns its costs there.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from backend.ml.research.backtest_metrics import position_changes
from backend.ml.research.trade_sim import Costs, trade_predictions
from backend.risk.policy import RiskPolicy
from backend.src.models.base import TFT_COLUMN, Model, Precomputed
from backend.src.models.ensemble_predictor import FEATURE_SETS, EnsembleConfig, EnsemblePredictor
from backend.src.models.feature_pipeline import build, forward_return, infer_timeframe_ms
from backend.src.models.multi_tf import market_context
from backend.src.models.tft import TFTModel
from backend.src.trading.strategies.ensemble import decision_of

DAY_MS = 86_400_000


@dataclass(frozen=True)
class WalkForward:
    train_bars: int = 2880  # 10 days of 5m
    test_bars: int = 288  # one day
    horizon: int = 12

    def folds(self, start: int, end: int) -> list[tuple[slice, slice]]:
        out = []
        t = start
        while t < end:
            train_end = t - self.horizon - 1  # purge: these labels look into the test fold
            out.append((slice(max(0, train_end - self.train_bars), train_end), slice(t, min(end, t + self.test_bars))))
            t += self.test_bars
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
               bars_per_day: int) -> dict[str, Pair]:
    """Features (with cross-pair context when there are several pairs) and regions per pair."""
    context = market_context({k: df for k, (_s, df) in frames.items()}) if len(frames) > 1 else {}
    pairs = {}
    for name, (symbol, df) in frames.items():
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

    def config(self, base: EnsembleConfig) -> EnsembleConfig:
        cfg = base if self.tft else base.without("tft")
        return cfg.model_copy(update={"horizon": self.horizon, "threshold": self.threshold,
                                      "exit_threshold": min(base.exit_threshold, self.threshold),
                                      "min_hold": self.horizon // 2, "edge": self.edge})


@dataclass(frozen=True)
class Grid:
    horizons: tuple[int, ...] = (12, 24)
    thresholds: tuple[float, ...] = (0.5, 0.55, 0.6)
    edges: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    max_changes_per_5_days: float = 10.0

    def candidates(self, with_tft: bool) -> list[Candidate]:
        return [Candidate(h, t, e, tft) for h, t, e, tft in
                itertools.product(self.horizons, self.thresholds, self.edges, (False, True) if with_tft else (False,))]


def fold_models(config: EnsembleConfig) -> dict[str, Model]:
    """Fresh models for one fold; the TFT (trained once, before the region) is read from its column."""
    models = EnsemblePredictor(config).models
    if "tft" in models:
        models["tft"] = Precomputed()
    return models


def predict_pooled(pairs: dict[str, Pair], config: EnsembleConfig, wf: WalkForward,
                   which: str) -> dict[str, pd.DataFrame]:
    """Walk-forward predictions of one config over a region of every pair: before each fold, one
    model trained on every pair's past (ordered by time: calibration uses the latest rows)."""
    folds = {k: wf.folds(p.region(which).start, p.region(which).stop) for k, p in pairs.items()}
    parts: dict[str, list[pd.DataFrame]] = {k: [] for k in pairs}
    targets = {k: forward_return(p.df, wf.horizon) for k, p in pairs.items()}
    from tqdm import tqdm  # noqa: PLC0415 - research only (the trainer install)

    n_folds = max(len(f) for f in folds.values())
    for i in tqdm(range(n_folds), desc=f"{which} folds", leave=False, disable=not sys.stderr.isatty()):
        live = [k for k in pairs if i < len(folds[k])]
        x = pd.concat([pairs[k].feats.iloc[folds[k][i][0]] for k in live])
        y = pd.concat([targets[k].iloc[folds[k][i][0]] for k in live])
        order = np.argsort(x.index.to_numpy(), kind="stable")
        model = EnsemblePredictor(config, fold_models(config)).fit(x.iloc[order], y.iloc[order])
        for k in live:
            parts[k].append(model.predict(pairs[k].feats.iloc[folds[k][i][1]]))
    return {k: pd.concat(v) for k, v in parts.items()}


@dataclass
class Selection:
    chosen: Candidate | None
    scores: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tried(self) -> int:
        return len(self.scores)


def score_candidate(pairs: dict[str, Pair], preds: dict[str, pd.DataFrame], cfg: EnsembleConfig, costs: Costs,
                    policy: RiskPolicy) -> tuple[float, float]:
    """(mean net return, mean position changes per pair per 5 days) on the validation region."""
    rets, changes = [], []
    for k, p in pairs.items():
        sl = p.region("val")
        ret, held, _ = trade_predictions(p.df.iloc[sl], preds[k], decision_of(cfg), p.symbol, costs, policy)
        rets.append(float(np.prod(1 + ret.to_numpy()) - 1))
        days = len(ret) * infer_timeframe_ms(p.df) / DAY_MS
        changes.append(position_changes(held) * 5 / max(days, 1e-9))
    return float(np.mean(rets)), float(np.mean(changes))


def select(pairs: dict[str, Pair], base: EnsembleConfig, grid: Grid, costs: Costs, policy: RiskPolicy,
           val_preds: dict[tuple[int, bool], dict[str, pd.DataFrame]]) -> Selection:
    """Every candidate traded on the validation folds; the best within the turnover budget that
    earns more than its costs (net return > 0), else none."""
    sel = Selection(None)
    best: tuple[float, float] | None = None
    for cand in grid.candidates(with_tft=any(tft for _h, tft in val_preds)):
        net, changes = score_candidate(pairs, val_preds[(cand.horizon, cand.tft)], cand.config(base), costs, policy)
        sel.scores.append({**cand.__dict__, "val_net_return": net, "val_changes_per_5_days": changes})
        if changes > grid.max_changes_per_5_days or net <= 0:
            continue
        if best is None or (net, -changes) > best:
            best, sel.chosen = (net, -changes), cand
    return sel
