"""Paper broker: market orders filled at the candle close with slippage and taker fees.

Position accounting is a pure function of the fills, so the journal can rebuild it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Fill:
    order_id: str
    side: str  # "buy" | "sell"
    qty: float  # always > 0
    price: float  # execution price, slippage included
    fee: float  # quote currency
    candle_ts: int
    ts: float  # wall time of the fill

    def as_entry(self) -> dict[str, Any]:
        return {"type": "fill", **self.__dict__}

    @staticmethod
    def from_entry(e: dict[str, Any]) -> Fill:
        return Fill(
            str(e["order_id"]), str(e["side"]), float(e["qty"]), float(e["price"]),
            float(e["fee"]), int(e["candle_ts"]), float(e["ts"]),
        )


class PaperBroker:
    def __init__(self, symbol: str, *, initial_equity: float, fee_bps: float, slippage_bps: float) -> None:
        self.symbol = symbol
        self.initial_equity = initial_equity
        self.fee_rate = fee_bps / 10_000
        self.slippage = slippage_bps / 10_000
        self.qty = 0.0  # signed position, base currency
        self.avg_price = 0.0
        self.realized = 0.0  # gross of fees
        self.fees = 0.0
        self.last_price = 0.0
        self.day_open_equity = initial_equity
        self.last_fill: Fill | None = None

    def quote(self, side: str, qty: float, price: float, *, order_id: str, candle_ts: int, now: float) -> Fill:
        """The fill a market order would get at ``price`` (not applied yet)."""
        if qty <= 0 or price <= 0:
            raise ValueError(f"order needs qty > 0 and price > 0, got qty={qty} price={price}")
        px = price * (1 + self.slippage) if side == "buy" else price * (1 - self.slippage)
        return Fill(order_id, side, qty, px, abs(qty * px) * self.fee_rate, candle_ts, now)

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
                self.qty, self.avg_price = 0.0, 0.0
            elif (new_qty > 0) != (self.qty > 0):  # flipped through zero
                self.qty, self.avg_price = new_qty, fill.price
            else:
                self.qty = new_qty
        self.last_price = fill.price
        self.last_fill = fill

    def mark(self, price: float) -> None:
        self.last_price = price

    @property
    def unrealized(self) -> float:
        return self.qty * (self.last_price - self.avg_price) if self.qty else 0.0

    @property
    def equity(self) -> float:
        return self.initial_equity + self.realized - self.fees + self.unrealized

    @property
    def pnl(self) -> float:
        return self.equity - self.initial_equity

    @property
    def daily_pnl(self) -> float:
        return self.equity - self.day_open_equity

    def rebuild(self, entries: list[dict[str, Any]]) -> None:
        """Replay journal entries (fills and day marks) onto a fresh broker."""
        for e in entries:
            if e["type"] == "fill":
                self.apply(Fill.from_entry(e))
            elif e["type"] == "day":
                self.day_open_equity = float(e["equity"])
                if e.get("price"):
                    self.last_price = float(e["price"])
