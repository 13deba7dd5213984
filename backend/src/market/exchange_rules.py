"""Exchange trading rules: price tick, lot step, minimum quantity and notional.

From the ccxt market when trading live (or when the config names none), from the engine
config for replay and synthetic feeds. An order that breaks a rule is rejected with the
rule named, exactly as the exchange would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from backend.src.market.perpetual import Brackets

TICK_SIZE = 4  # ccxt's precisionMode constant (DECIMAL_PLACES is 2)


class OrderRejected(Exception):
    """The order breaks an exchange rule (the reason names it)."""


@dataclass(frozen=True)
class MarketRules:
    tick_size: float = 0.0  # 0: any price
    step_size: float = 0.0  # 0: any quantity
    min_qty: float = 0.0
    min_notional: float = 0.0

    @staticmethod
    def from_ccxt(market: dict[str, Any], precision_mode: int = TICK_SIZE) -> MarketRules:
        """From a ccxt market: ``precision`` holds steps (TICK_SIZE mode) or decimal places."""
        precision, limits = market.get("precision") or {}, market.get("limits") or {}

        def step(value: Any) -> float:
            if value is None:
                return 0.0
            return float(value) if precision_mode == TICK_SIZE else 10.0 ** -float(value)

        return MarketRules(
            tick_size=step(precision.get("price")),
            step_size=step(precision.get("amount")),
            min_qty=float((limits.get("amount") or {}).get("min") or 0),
            min_notional=float((limits.get("cost") or {}).get("min") or 0),
        )

    def round_qty(self, qty: float) -> float:
        """Down to the lot step (never buy more than asked)."""
        if not self.step_size:
            return qty
        step = Decimal(str(self.step_size))
        return float((Decimal(str(qty)) / step).to_integral_value(ROUND_DOWN) * step)

    def round_price(self, price: float, side: str) -> float:
        """To the tick, on the side that keeps a limit order passive (buy down, sell up)."""
        if not self.tick_size:
            return price
        tick = Decimal(str(self.tick_size))
        units = Decimal(str(price)) / tick
        return float(units.to_integral_value(ROUND_FLOOR if side == "buy" else ROUND_CEILING) * tick)

    def round_fill_price(self, price: float) -> float:
        if not self.tick_size:
            return price
        tick = Decimal(str(self.tick_size))
        return float((Decimal(str(price)) / tick).to_integral_value(ROUND_HALF_UP) * tick)

    def check(self, qty: float, price: float) -> float:
        """The quantity rounded to the lot step; OrderRejected if a rule is broken."""
        if not math.isfinite(qty) or not math.isfinite(price) or price <= 0:
            raise OrderRejected(f"invalid order: qty={qty} price={price}")
        rounded = self.round_qty(qty)
        if rounded <= 0 or rounded < self.min_qty:
            raise OrderRejected(f"LOT_SIZE: quantity {qty:.10g} rounds to {rounded:.10g} < minimum {self.min_qty:g}")
        if rounded * price < self.min_notional:
            raise OrderRejected(
                f"MIN_NOTIONAL: {rounded:.10g} x {price:.10g} = {rounded * price:.4f} < {self.min_notional:g}")
        return rounded


@dataclass(frozen=True)
class MarketTerms:
    """What an exchange's market says about trading on it: its rules, and its fees as rates (None: unknown)."""

    rules: MarketRules
    taker: float | None = None
    maker: float | None = None
    brackets: Brackets | None = None  # a perpetual's maintenance-margin tiers, as the exchange states them

    @staticmethod
    def from_ccxt(market: dict[str, Any], precision_mode: int = TICK_SIZE) -> MarketTerms:
        return MarketTerms(MarketRules.from_ccxt(market, precision_mode), market.get("taker"), market.get("maker"))
