"""What a strategy is: closed candles in, a ``Signal`` (target exposure in [0, 1] of the symbol's
maximum position, with ``prob_up`` and ``confidence``) out. A leaf: implementations import it,
it imports none of them (the factory maps config names to classes)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from backend.src.core.types import Candle, Signal

__all__ = ["Signal", "Strategy"]


class Strategy(ABC):
    warmup_candles: int = 0

    def warmup(self, candles: list[Candle]) -> None:
        for c in candles:
            self.on_candle(c)

    @abstractmethod
    def on_candle(self, candle: Candle) -> Signal | None:
        """Signal after this closed candle, or None while not warmed up."""
