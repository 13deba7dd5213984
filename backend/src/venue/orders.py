"""What passes between a trader and its venue: orders, fills, and the context of one call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Order:
    id: str
    side: str  # buy | sell
    kind: str  # market | limit
    qty: float
    price: float  # limit price (0 for market)
    candle_ts: int
    filled: float = 0.0
    reason: str = ""
    reduce_only: bool = False  # only closes (a perpetual exchange refuses it if it would open the other way)

    @property
    def remaining(self) -> float:
        return max(0.0, self.qty - self.filled)


@dataclass(frozen=True)
class Fill:
    order_id: str
    side: str  # "buy" | "sell"
    qty: float  # always > 0
    price: float  # execution price, slippage included
    fee: float  # quote currency
    candle_ts: int
    ts: float  # wall time of the fill
    reason: str = ""  # the order's reason, or what the venue did: stop_loss, liquidation, reconcile, ...

    def as_entry(self) -> dict[str, Any]:
        return {"type": "fill", **self.__dict__}

    @staticmethod
    def from_entry(e: dict[str, Any]) -> Fill:
        return Fill(
            str(e["order_id"]), str(e["side"]), float(e["qty"]), float(e["price"]),
            float(e["fee"]), int(e["candle_ts"]), float(e["ts"]), str(e.get("reason", "")),
        )


class Desk(Protocol):
    """What a venue reports to (the trader): every entry is journaled before it takes effect."""

    def record(self, entry: dict[str, Any], gen: int) -> dict[str, Any]: ...

    def book_fill(self, fill: Fill, gen: int, tags: dict[str, str]) -> Fill: ...

    def book_funding(self, entry: dict[str, Any], gen: int) -> None: ...


@dataclass(slots=True)  # built twice per candle: slots, not frozen (a frozen init costs ~10x); never mutated
class Step:
    """One call from the trader: the candle its entries belong to (``ts``), the lease generation, wall
    time, the fencing check (raises once another engine owns the symbol) and the desk to report to."""

    ts: int
    gen: int
    now: float
    fence: Callable[[], None]
    desk: Desk

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        return self.desk.record(entry, self.gen)

    def book(self, order_id: str, side: str, qty: float, price: float, fee: float, **tags: str) -> Fill:
        """Journal a fill (with ``tags``: liquidity, reason) and apply it to the position."""
        fill = Fill(order_id, side, qty, price, fee, self.ts, self.now, tags.get("reason", ""))
        return self.desk.book_fill(fill, self.gen, tags)

    def fund(self, rate: float, price: float, position: float, amount: float | None = None, *,
             exchange_ts: int | None = None) -> None:
        """Journal a funding payment on ``position`` (signed) at mark ``price`` and apply it: a long pays
        ``position × price × rate`` when the rate is positive (``amount``, ``exchange_ts``: what the exchange
        says it was, and when)."""
        paid = -position * price * rate if amount is None else amount
        entry = {"type": "funding", "candle_ts": self.ts, "ts": self.now, "rate": rate, "price": price,
                 "qty": position, "amount": paid}
        self.desk.book_funding(entry if exchange_ts is None else {**entry, "exchange_ts": exchange_ts}, self.gen)
