"""Config name → strategy instance: the one place that knows every implementation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from backend.src.core.config import StrategyConfig
from backend.src.trading.strategies.base import Strategy
from backend.src.trading.strategies.baselines import BuyAndHold, Momentum, SmaCrossover
from backend.src.trading.strategies.ensemble import build_ml_strategy


def build_strategy(cfg: StrategyConfig, models_root: Path | None = None,
                   extras: Callable[[], dict[str, float]] | None = None) -> Strategy:
    """``ensemble``: the production model under ``models_root`` when there is one, else the SMA;
    ``extras`` supplies outside features (the news score) for the latest candle."""
    if cfg.name == "ensemble":
        return build_ml_strategy(cfg.fast, cfg.slow, models_root, extras)
    if cfg.name == "momentum":
        return Momentum(cfg.lookback, cfg.threshold)
    if cfg.name == "buy_and_hold":
        return BuyAndHold()
    return SmaCrossover(cfg.fast, cfg.slow)
