"""Value types every floor shares: a closed candle and a strategy's signal."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candle:
    ts: int  # open time, ms since epoch (UTC)
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class Signal:
    target: float  # desired exposure, 0 = flat, 1 = full size long
    prob_up: float
    confidence: float
    reason: str
    notional: float | None = None  # a fixed entry size in the quote currency (else the risk sizer's)
