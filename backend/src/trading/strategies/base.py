"""The strategy contract: closed candles in, a ``Signal`` (target exposure in [-1, 1] of the
symbol's maximum position, negative for a short, with ``prob_up`` and ``confidence``) out.

- ``warmup_candles``: how many candles before the first signal (engines replay that much history);
- ``Params``: the strategy's own pydantic model; a config's ``strategy.params`` is validated against
  it when the config is loaded (an unknown or bad parameter is one error naming it);
- ``position``: what the journal says about the open position, set by the trading session before
  every candle — rebuilt from the journal after a restart, so a strategy keeps no position state
  of its own that a crash could lose;
- ``round_trip_cost``: what one round trip (buy and sell at the taker fee plus slippage) costs, as a
  fraction of its notional, set by the trading session from the symbol's config: a strategy may
  refuse trades whose expected move cannot pay it;
- ``allow_short``: the strategy means to sell short (its parameter, or a LeviLang ``entry_short``): a
  spot symbol refuses it when the config is loaded;
- ``shorts`` / ``funding_per_bar``: whether the symbol can be sold short (perpetuals) and the funding
  rate a position is expected to pay per candle (positive: longs pay), set by the trading session;
- ``fingerprint`` / ``model_version``: written on every order, so a trade traces back to the exact
  rules and model that made it;
- ``indicators()``: the values the strategy exposes after a candle (the warm-up check compares them);
  ``precompute(candles)``: the backtester's whole run at once (vectorized strategies; a no-op here).

This is the public Strategy API (version ``API_VERSION``, docs/strategies.md): plugins subclass it.

A leaf: implementations import it, it imports none of them (the factory maps names to classes).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from backend.src.core.types import Candle, Signal

__all__ = ["API_VERSION", "NoParams", "PositionState", "Signal", "Strategy", "fingerprint"]

API_VERSION = 1  # docs/strategies.md: what a plugin may rely on; raised on a breaking change


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class PositionState:
    qty: float = 0.0  # signed, base currency
    avg_price: float = 0.0
    bars_held: int = 0  # candles since the position was opened (0 when flat)
    bars_since_exit: int = 1_000_000  # candles since it was last closed
    unrealized_pct: float = 0.0  # of the entry price
    target: float = 0.0  # the signal target the position was sized for


FLAT = PositionState()


def fingerprint(name: str, params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps({"name": name, "params": params}, sort_keys=True).encode()).hexdigest()[:16]


class Strategy(ABC):
    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    warmup_candles: int = 0
    fingerprint: str = ""
    model_version: str = ""
    position: PositionState = FLAT
    round_trip_cost: float = 0.0
    allow_short: bool = False
    shorts: bool = False
    funding_per_bar: float = 0.0
    stop_loss_pct: float | None = None  # set: replaces the config's protective exits while it trades
    take_profit_pct: float | None = None

    label: str = ""  # set by the factory: a plugin's module:Class

    @property
    def trading_as(self) -> str:
        """What actually trades, for status and the dashboard (a wrapper names what it delegates to)."""
        return self.label or self.name

    def warmup(self, candles: list[Candle]) -> None:
        for c in candles:
            self.on_candle(c)

    def precompute(self, candles: list[Candle]) -> None:
        """The backtester hands the whole run before its first candle (a vectorized strategy computes
        every target at once here; the look-ahead check proves that equals deciding candle by candle).
        Engines never call it."""
        return None

    def indicators(self) -> dict[str, float]:
        """Values the strategy exposes after its last candle (shown, and compared by the warm-up check)."""
        return {}

    @abstractmethod
    def on_candle(self, candle: Candle) -> Signal | None:
        """Signal after this closed candle, or None while not warmed up."""
