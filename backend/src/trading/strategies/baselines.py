"""The baseline strategies every model must beat: SMA crossover, momentum, time-series momentum with
volatility targeting, buy-and-hold."""

from __future__ import annotations

import math
from collections import deque

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.src.core.types import Candle, Signal
from backend.src.trading.strategies.base import Strategy, fingerprint


class SmaParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fast: int = Field(default=10, ge=1, le=10_000)  # fast SMA length (candles)
    slow: int = Field(default=30, ge=2, le=10_000)  # slow SMA length, > fast
    allow_short: bool = False  # short while fast < slow (perpetual symbols only)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be smaller than slow")
        return self


class MomentumParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback: int = Field(default=20, ge=1, le=10_000)
    threshold: float = Field(default=0.0, ge=0)  # minimum return over lookback to go long
    allow_short: bool = False  # short while the return is below -threshold (perpetual symbols only)


def _params(name: str, params: dict[str, object], allow_short: bool) -> str:
    """The fingerprint of a baseline (``allow_short`` counted only when set: older hashes stay)."""
    return fingerprint(name, {**params, "allow_short": True} if allow_short else params)


class SmaCrossover(Strategy):
    """Long while the fast SMA of closes is above the slow SMA; flat otherwise, or short with ``allow_short``."""

    name = "sma_crossover"
    Params = SmaParams

    def __init__(self, fast: int, slow: int, allow_short: bool = False) -> None:
        self.fast, self.slow, self.allow_short = fast, slow, allow_short
        self.warmup_candles = slow
        self.closes: deque[float] = deque(maxlen=slow)
        self.fingerprint = _params(self.name, {"fast": fast, "slow": slow}, allow_short)

    def on_candle(self, candle: Candle) -> Signal | None:
        self.closes.append(candle.close)
        if len(self.closes) < self.slow:
            return None
        slow = sum(self.closes) / self.slow
        fast = sum(list(self.closes)[-self.fast :]) / self.fast
        spread = (fast - slow) / slow
        prob_up = min(1.0, max(0.0, 0.5 + spread * 50))
        target = 1.0 if fast > slow else -1.0 if self.allow_short and fast < slow else 0.0
        return Signal(target, prob_up, abs(prob_up - 0.5) * 2, f"sma{self.fast}/{self.slow} spread={spread:.5f}")


class Momentum(Strategy):
    """Long while the return over ``lookback`` candles exceeds ``threshold`` (short, with ``allow_short``,
    while it is below ``-threshold``)."""

    name = "momentum"
    Params = MomentumParams

    def __init__(self, lookback: int, threshold: float, allow_short: bool = False) -> None:
        self.lookback, self.threshold, self.allow_short = lookback, threshold, allow_short
        self.fingerprint = _params(self.name, {"lookback": lookback, "threshold": threshold}, allow_short)
        self.warmup_candles = lookback + 1
        self.closes: deque[float] = deque(maxlen=lookback + 1)

    def on_candle(self, candle: Candle) -> Signal | None:
        self.closes.append(candle.close)
        if len(self.closes) <= self.lookback:
            return None
        ret = self.closes[-1] / self.closes[0] - 1
        prob_up = min(1.0, max(0.0, 0.5 + ret * 10))
        target = 1.0 if ret > self.threshold else -1.0 if self.allow_short and ret < -self.threshold else 0.0
        return Signal(target, prob_up, abs(prob_up - 0.5) * 2, f"momentum{self.lookback} ret={ret:.5f}")


class TsMomentumParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback: int = Field(default=720, ge=1, le=100_000)  # candles: the trend is the return's sign over this
    vol_window: int = Field(default=720, ge=2, le=100_000)  # candles: the volatility of their returns
    vol_target: float = Field(default=0.3, gt=0, le=10)  # annualised volatility the position is sized to
    size_step: float = Field(default=0.25, gt=0, le=1)  # sizes in whole steps; re-sized only by a step or more
    allow_short: bool = False  # short a falling trend (perpetual symbols only)


class TsMomentum(Strategy):
    """Time-series momentum, volatility-targeted (Moskowitz, Ooi & Pedersen 2012): the side of the return
    over ``lookback`` candles (720: 30 days of hourly ones), sized ``vol_target`` / the annualised volatility
    of the returns over ``vol_window`` candles (at most 1), in whole steps. The candle length, which
    annualises, is read from the candles."""

    name = "ts_momentum"
    Params = TsMomentumParams

    def __init__(self, lookback: int = 720, vol_window: int = 720, vol_target: float = 0.3,
                 size_step: float = 0.25, allow_short: bool = False) -> None:
        self.p = TsMomentumParams(lookback=lookback, vol_window=vol_window, vol_target=vol_target,
                                  size_step=size_step, allow_short=allow_short)
        self.allow_short = allow_short
        self.fingerprint = fingerprint(self.name, self.p.model_dump())
        self.warmup_candles = max(lookback, vol_window) + 1
        self.closes: deque[float] = deque(maxlen=self.warmup_candles)
        self.last_ts, self.bar_ms = 0, 0

    def on_candle(self, candle: Candle) -> Signal | None:
        if self.last_ts and candle.ts > self.last_ts:
            gap = candle.ts - self.last_ts
            self.bar_ms = gap if not self.bar_ms else min(self.bar_ms, gap)  # a missing candle is not the length
        self.last_ts = candle.ts
        self.closes.append(candle.close)
        if len(self.closes) < self.warmup_candles or not self.bar_ms or min(self.closes) <= 0:
            return None
        import numpy as np  # noqa: PLC0415 - only this strategy needs it; other engines never load it

        closes = np.fromiter(self.closes, dtype=float, count=len(self.closes))
        trend = float(closes[-1] / closes[-1 - self.p.lookback] - 1)
        rets = np.diff(np.log(closes[-1 - self.p.vol_window:]))  # recomputed per candle: a restart sees the same
        vol = float(rets.std(ddof=1)) * math.sqrt(365 * 86_400_000 / self.bar_ms)
        step = self.p.size_step
        size = math.floor(min(1.0, self.p.vol_target / vol) / step + 1e-9) * step if vol > 0 else 0.0
        held = abs(self.position.target) if self.position.qty else 0.0
        if held and abs(size - held) < step:
            size = held  # within a step of what is held: no fee-paying resize
        side = 1.0 if trend > 0 else -1.0 if self.allow_short and trend < 0 else 0.0
        prob_up = min(1.0, max(0.0, 0.5 + trend))
        return Signal(side * size, prob_up, abs(prob_up - 0.5) * 2,
                      f"ts_momentum{self.p.lookback} ret={trend:.4f} vol={vol:.3f} size={size:.2f}")


class BuyAndHold(Strategy):
    """Always fully long: the baseline every strategy must beat (and a stress-test driver)."""

    name = "buy_and_hold"
    fingerprint = fingerprint("buy_and_hold", {})

    def on_candle(self, candle: Candle) -> Signal | None:
        return Signal(1.0, 0.5, 0.0, "buy_and_hold")
