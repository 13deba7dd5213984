"""The position book: a symbol's signed position, average price, realized PnL, fees and funding.

A pure function of the fills (and the day marks) in the journal, so the journal rebuilds it exactly
after a restart. Paper and live alike: what a venue reports as filled is booked here.
"""

from __future__ import annotations

from typing import Any

from backend.src.venue.orders import Fill


class PositionBook:
    def __init__(self, symbol: str, *, initial_equity: float, leverage: float = 1.0) -> None:
        self.symbol = symbol
        self.initial_equity = initial_equity
        self.leverage = leverage  # perpetual: the position's isolated margin is its notional / leverage
        self.funding = 0.0  # received (+) or paid (-) in total, quote currency
        self.funding_open = 0.0  # ... while the open position was held (it moves its isolated margin)
        self.qty = 0.0  # signed position, base currency
        self.avg_price = 0.0
        self.realized = 0.0  # gross of fees
        self.fees = 0.0
        self.last_price = 0.0
        self.day_open_equity = initial_equity
        self.last_fill: Fill | None = None

    def apply(self, fill: Fill) -> None:
        signed = fill.qty if fill.side == "buy" else -fill.qty
        self.fees += fill.fee
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            new_qty = self.qty + signed
            self.avg_price = (self.avg_price * abs(self.qty) + fill.price * abs(signed)) / abs(new_qty)
            self.qty = new_qty
        else:
            closing = min(abs(signed), abs(self.qty))
            direction = 1.0 if self.qty > 0 else -1.0
            self.realized += closing * (fill.price - self.avg_price) * direction
            new_qty = self.qty + signed
            if abs(new_qty) < 1e-12:
                self.qty, self.avg_price, self.funding_open = 0.0, 0.0, 0.0
            elif (new_qty > 0) != (self.qty > 0):  # flipped through zero
                self.qty, self.avg_price, self.funding_open = new_qty, fill.price, 0.0
            else:
                self.qty = new_qty
        self.last_price = fill.price
        self.last_fill = fill

    def fund(self, amount: float) -> None:
        """A funding payment on the open position: received (+) or paid (-)."""
        self.funding += amount
        self.funding_open += amount

    def mark(self, price: float) -> None:
        self.last_price = price

    @property
    def margin(self) -> float:
        """The open position's isolated margin: its entry notional / leverage, moved by the funding since."""
        return abs(self.qty) * self.avg_price / self.leverage + self.funding_open if self.qty else 0.0

    @property
    def unrealized(self) -> float:
        return self.qty * (self.last_price - self.avg_price) if self.qty else 0.0

    @property
    def equity(self) -> float:
        return self.initial_equity + self.realized - self.fees + self.funding + self.unrealized

    @property
    def pnl(self) -> float:
        return self.equity - self.initial_equity

    @property
    def daily_pnl(self) -> float:
        return self.equity - self.day_open_equity

    def rebuild(self, entries: list[dict[str, Any]]) -> None:
        """Replay journal entries (fills, funding and day marks) onto a fresh book."""
        for e in entries:
            if e["type"] == "fill":
                self.apply(Fill.from_entry(e))
            elif e["type"] == "funding":
                self.fund(float(e["amount"]))
            elif e["type"] == "day":
                self.day_open_equity = float(e["equity"])
                if e.get("price"):
                    self.last_price = float(e["price"])
