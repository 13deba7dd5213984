"""Strategy interface and the baseline strategies.

A strategy turns closed candles into a ``Signal``: a target exposure in [0, 1] of the
symbol's maximum position, with ``prob_up`` and ``confidence`` so the ML ensemble can
later plug in behind the same interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backend.src.config import StrategyConfig
from backend.src.market_data import Candle


@dataclass(frozen=True)
class Signal:
    target: float  # desired exposure, 0 = flat, 1 = full size long
    prob_up: float
    confidence: float
    reason: str


class Strategy(ABC):
    warmup_candles: int = 0

    def warmup(self, candles: list[Candle]) -> None:
        for c in candles:
            self.on_candle(c)

    @abstractmethod
    def on_candle(self, candle: Candle) -> Signal | None:
        """Signal after this closed candle, or None while not warmed up."""


class SmaCrossover(Strategy):
    """Long while the fast SMA of closes is above the slow SMA, flat otherwise."""

    def __init__(self, fast: int, slow: int) -> None:
        self.fast, self.slow = fast, slow
        self.warmup_candles = slow
        self.closes: deque[float] = deque(maxlen=slow)

    def on_candle(self, candle: Candle) -> Signal | None:
        self.closes.append(candle.close)
        if len(self.closes) < self.slow:
            return None
        slow = sum(self.closes) / self.slow
        fast = sum(list(self.closes)[-self.fast :]) / self.fast
        spread = (fast - slow) / slow
        prob_up = min(1.0, max(0.0, 0.5 + spread * 50))
        target = 1.0 if fast > slow else 0.0
        return Signal(target, prob_up, abs(prob_up - 0.5) * 2, f"sma{self.fast}/{self.slow} spread={spread:.5f}")


class Momentum(Strategy):
    """Long while the return over ``lookback`` candles exceeds ``threshold``."""

    def __init__(self, lookback: int, threshold: float) -> None:
        self.lookback, self.threshold = lookback, threshold
        self.warmup_candles = lookback + 1
        self.closes: deque[float] = deque(maxlen=lookback + 1)

    def on_candle(self, candle: Candle) -> Signal | None:
        self.closes.append(candle.close)
        if len(self.closes) <= self.lookback:
            return None
        ret = self.closes[-1] / self.closes[0] - 1
        prob_up = min(1.0, max(0.0, 0.5 + ret * 10))
        target = 1.0 if ret > self.threshold else 0.0
        return Signal(target, prob_up, abs(prob_up - 0.5) * 2, f"momentum{self.lookback} ret={ret:.5f}")


class BuyAndHold(Strategy):
    """Always fully long: the baseline every strategy must beat (and a stress-test driver)."""

    def on_candle(self, candle: Candle) -> Signal | None:
        return Signal(1.0, 0.5, 0.0, "buy_and_hold")


def build_strategy(cfg: StrategyConfig, models_root: Path | None = None,
                   extras: Callable[[], dict[str, float]] | None = None) -> Strategy:
    """``ensemble``: the production model under ``models_root`` when there is one, else the SMA;
    ``extras`` supplies outside features (the news score) for the latest candle."""
    if cfg.name == "ensemble":
        from backend.src.ml_strategy import build_ml_strategy  # noqa: PLC0415

        return build_ml_strategy(cfg.fast, cfg.slow, models_root, extras)
    if cfg.name == "momentum":
        return Momentum(cfg.lookback, cfg.threshold)
    if cfg.name == "buy_and_hold":
        return BuyAndHold()
    return SmaCrossover(cfg.fast, cfg.slow)
