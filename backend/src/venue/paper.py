"""The simulated exchange that paper engines and the backtester share.

A market order decided at a candle's close rests until the next candle and fills at its open (taker
fee + slippage): it never fills at a price that was gone by the time it could have been sent. A limit
order fills when a later candle trades through its price, at most ``max_participation`` of that
candle's volume (partial fills), at its price or the better open (maker fee, no slippage). Exits at a
reference price (stops, a flatten) fill at once: slippage when taken (a stop-loss, a flatten), none
when resting (a take-profit). Prices are rounded to the tick; fees are the config's.

Perpetuals: funding is paid or received at every funding time on the position held into it, at the
candle's open (the rates from ``funding_file``, else ``funding_rate``, else Binance's 0.01 % per 8 h
interest baseline); a liquidation fills at the liquidation price with ``liquidation_fee_bps`` (isolated
margin: the loss stops at the margin, even when the price gapped through).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from backend.src.core.config import SymbolConfig
from backend.src.core.errors import TransientError
from backend.src.core.types import Candle
from backend.src.market.exchange_rules import MarketRules, MarketTerms
from backend.src.market.perpetual import FundingRates, funding_rates, is_funding_time
from backend.src.venue.orders import Fill, Order, Step

log = logging.getLogger(__name__)


class PaperVenue:
    name = "paper"
    fails_closed = False  # paper rides out a Redis outage (limits are re-checked on return)

    def __init__(self, cfg: SymbolConfig, terms: Callable[[], MarketTerms] | None = None) -> None:
        self._terms = terms  # paper on a live feed: the exchange's rules and fees, read when connecting
        self.configure(cfg, MarketRules())  # the trader configures the rules in force

    def configure(self, cfg: SymbolConfig, rules: MarketRules) -> None:
        self.cfg, self.rules = cfg, rules
        self.slippage = cfg.slippage_bps / 10_000
        self.funding = funding_rates(cfg) if cfg.perpetual else FundingRates(0.0, source="spot")

    def terms(self) -> MarketTerms | None:
        """The exchange's rules and fees where paper trades a live feed; None (the config's) when there is
        no exchange, or it cannot be reached now: paper fills never wait on an exchange (a failed engine's
        paper position is still closed at the last known price)."""
        if self._terms is None:
            return None
        try:
            return self._terms()
        except TransientError as exc:
            log.warning("exchange market terms unavailable (%s); paper fills use the config's rules and fees", exc)
            return None

    def mark_price(self, timeframe: str) -> float | None:
        return None  # no exchange to ask: the journal's last price stands

    def connect(self, orders: list[Order], position: float, price: float, step: Step, *, funded_ms: int = 0) -> None:
        return None  # the journal is the whole state of a paper venue: nothing to reconcile

    def quote(self, side: str, qty: float, price: float, liquidity: str) -> tuple[float, float]:
        """(price, fee) of a fill of ``qty`` at reference ``price``: slippage against a taker, on the tick."""
        if qty <= 0 or price <= 0:
            raise ValueError(f"order needs qty > 0 and price > 0, got qty={qty} price={price}")
        taker = liquidity == "taker"
        px = (price * (1 + self.slippage) if side == "buy" else price * (1 - self.slippage)) if taker else price
        px = self.rules.round_fill_price(px)
        fee_bps = {"taker": self.cfg.fee_bps, "liquidation": self.cfg.liquidation_fee_bps}.get(
            liquidity, self.cfg.maker_fee_bps)
        return px, qty * px * fee_bps / 10_000

    def settle(self, candle: Candle, position: float, step: Step) -> list[Fill]:
        if position and self.cfg.perpetual and is_funding_time(candle.ts):
            step.fence()
            step.fund(self.funding.rate(candle.ts), candle.open, position)
        return []  # nothing moves a paper position by itself but the trader's own checks

    def _fill(self, order: Order, qty: float, ref: float, liquidity: str, reason: str, step: Step) -> Fill:
        px, fee = self.quote(order.side, qty, ref, liquidity)
        return step.book(order.id, order.side, qty, px, fee, liquidity=liquidity, reason=reason)

    def match(self, orders: list[Order], candle: Candle, step: Step) -> list[Fill]:
        out = []
        for order in orders:
            if order.candle_ts >= candle.ts:
                continue
            buy = order.side == "buy"
            if order.kind == "market":  # decided at an earlier close: filled at this candle's open
                step.fence()
                out.append(self._fill(order, order.remaining, candle.open, "taker", order.reason, step))
                continue
            if not (candle.low <= order.price if buy else candle.high >= order.price):
                continue
            cap = candle.volume * self.cfg.max_participation
            qty = self.rules.round_qty(min(order.remaining, cap)) if cap > 0 else 0.0
            if qty <= 0:
                continue
            price = min(order.price, candle.open) if buy else max(order.price, candle.open)
            step.fence()
            out.append(self._fill(order, qty, price, "maker", "limit", step))
        return out

    def submit(self, order: Order, step: Step, *, at: float | None, liquidity: str) -> list[Fill]:
        if at is None:
            return []  # rests in the book: a market order fills at the next candle's open
        return [self._fill(order, order.qty, at, liquidity, order.reason, step)]

    def liquidate(self, order: Order, price: float, step: Step) -> list[Fill]:
        return [self._fill(order, order.qty, price, "liquidation", "liquidation", step)]

    def cancel(self, order: Order, step: Step) -> None:
        return None

    def protect(self, covered: float, avg_price: float, tag: str, step: Step) -> None:
        return None  # the trader's own stop-loss checks every candle: nothing rests between candles
