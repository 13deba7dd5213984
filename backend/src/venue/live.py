"""An exchange through ccxt, as a venue (``--live``).

Orders go out at once (a decision at a close is sent at the close, not held for the next open); a
placement the exchange refuses is journaled as a reject and a cancel. Resting orders are polled for
fills at every candle. Before the first order the venue reconciles: open orders left by an earlier
run are cancelled on the exchange and in the journal, and the position is taken from the exchange
balance (a difference is journaled as a ``reconcile`` fill). A stop-loss rests on the exchange for
the whole long position (``ProtectiveStop``), so a dead engine's position is still protected.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from backend.src.core.config import SymbolConfig
from backend.src.core.types import Candle
from backend.src.market.exchange import call
from backend.src.market.exchange_rules import MarketRules, MarketTerms, OrderRejected
from backend.src.market.perpetual import FUNDING_INTERVAL_MS
from backend.src.venue.live_orders import ExchangeFill, LiveExecutor, ProtectiveStop
from backend.src.venue.live_perp import PerpAccount, PerpStop
from backend.src.venue.orders import Fill, Order, Step

log = logging.getLogger(__name__)


def exchange_terms(ex: Any, market: str) -> MarketTerms:
    call(ex.load_markets)  # ccxt keeps the markets once loaded
    return MarketTerms.from_ccxt(ex.market(market), ex.precisionMode)


class LiveVenue:
    fails_closed = True  # no new live position while the portfolio's limits cannot be checked

    def __init__(self, symbol: str, exchange: Any, market: str, cfg: SymbolConfig) -> None:
        self.symbol, self.ex, self.market = symbol, exchange, market
        self.name = f"live:{getattr(exchange, 'id', 'exchange')}"
        self.orders = LiveExecutor(exchange, market)
        self.stop: ProtectiveStop | None = None  # the stop-loss resting on the exchange, once connected
        self.exchange_ids: dict[str, str] = {}  # our order id -> the exchange's, for orders placed here
        self.perp = PerpAccount(exchange, market) if cfg.perpetual else None
        self.perp_stop: PerpStop | None = None
        self.funded_ms = 0  # the exchange time of the last funding payment journaled
        self.funding_checked = 0  # the last funding time the account's income was read for (weight 30: not per candle)
        self.configure(cfg, MarketRules())

    def configure(self, cfg: SymbolConfig, rules: MarketRules) -> None:
        self.cfg, self.rules = cfg, rules

    def terms(self) -> MarketTerms:
        terms = exchange_terms(self.ex, self.market)
        return replace(terms, brackets=self.perp.brackets()) if self.perp is not None else terms

    def mark_price(self, timeframe: str) -> float | None:
        rows = call(self.ex.fetch_ohlcv, self.market, timeframe, limit=2)  # the feed engines use
        return float(rows[-1][4]) if rows else None

    def connect(self, orders: list[Order], position: float, price: float, step: Step, *, funded_ms: int = 0) -> None:
        if self.perp is not None:
            self.perp.setup(self.cfg.leverage)
            held, cancelled = self.perp.position(), self.perp.cancel_all()
            self.funded_ms = funded_ms or int(step.now * 1000)  # never charge again what the journal holds
        else:
            held, cancelled = self.orders.reconcile()
        for order in orders:
            step.record({"type": "cancel", "id": order.id, "candle_ts": -1, "reason": "reconcile"})
        diff = held - position
        if abs(diff) > max(self.rules.step_size, 1e-12):
            step.book(f"reconcile-{int(step.now)}", "buy" if diff > 0 else "sell", abs(diff), price, 0.0,
                      reason="reconcile")
        log.info("reconciled with the exchange: position %s, %d open order(s) cancelled", held, cancelled,
                 extra={"symbol": self.symbol})
        if self.perp is not None:
            self.perp_stop = PerpStop(self.perp, self.cfg.protective_stop_pct, step.record)
        else:
            self.stop = ProtectiveStop(self.orders, self.cfg.protective_stop_pct, step.record)
        log.warning("LIVE TRADING: real orders on %s", getattr(self.ex, "id", "the exchange"),
                    extra={"symbol": self.symbol})

    def settle(self, candle: Candle, position: float, step: Step) -> list[Fill]:
        """Perpetuals: the funding the account received or paid, then what the exchange did to the position by
        itself — our resting stop triggered, a liquidation, anything else (``reconcile``, alerted) — journaled
        before the candle's own work. One position read per candle; the income once per funding time."""
        if self.perp is None:
            return []
        due = candle.ts - candle.ts % FUNDING_INTERVAL_MS  # the latest funding time this candle has passed
        if due > self.funding_checked:
            for ts, amount in self.perp.funding(self.funded_ms + 1):
                rate = -amount / (position * candle.open) if position and candle.open else 0.0
                step.fund(rate, candle.open, position, amount, exchange_ts=ts)
                self.funded_ms = ts
            self.funding_checked = due
        if not position:
            return []
        held = self.perp.position()
        diff = held - position
        if abs(diff) <= max(self.rules.step_size, 1e-12):
            return []
        order_id = f"{self.symbol}-{candle.ts}-{step.gen}-exchange"
        if self.perp_stop is not None and self.perp_stop.triggered():
            return [self._book_trade(step, f"{order_id}_stop", diff, "stop_loss", candle.open)]
        if not held and (forced := self._forced(self.perp, step)) is not None:
            return [self._book_forced(self.perp, step, f"{order_id}_liquidation", diff, forced)]
        log.error("the exchange position moved by itself: %s -> %s", position, held,
                  extra={"symbol": self.symbol, "alert": True})
        return [self._book_trade(step, f"{order_id}_reconcile", diff, "reconcile", candle.open)]

    def liquidate(self, order: Order, price: float, step: Step) -> list[Fill]:
        """The candles say the margin is gone: the exchange decides. Its forced order, once it has closed the
        position, is journaled; while it still holds it, nothing happens here."""
        if self.perp is None:
            return []
        held = self.perp.position()
        forced = self._forced(self.perp, step) if not held else None
        if forced is None:
            log.warning("liquidation price crossed on the candles, the exchange holds %s", held,
                        extra={"symbol": self.symbol})
            return []
        return [self._book_forced(self.perp, step, order.id, (1 if order.side == "buy" else -1) * order.qty, forced)]

    @staticmethod
    def _forced(perp: PerpAccount, step: Step) -> dict[str, Any] | None:
        """The exchange's latest liquidation order on our market (the last three days), if any."""
        rows = perp.forced(int(step.now * 1000) - 3 * 86_400_000)
        return rows[-1] if rows else None

    @staticmethod
    def _book_forced(perp: PerpAccount, step: Step, order_id: str, diff: float, forced: dict[str, Any]) -> Fill:
        fee = perp.commission(str(forced["orderId"]))
        return step.book(order_id, "buy" if diff > 0 else "sell", abs(diff), float(forced["avgPrice"]), fee,
                         liquidity="liquidation", reason="liquidation")

    def _book_trade(self, step: Step, order_id: str, diff: float, reason: str, price: float) -> Fill:
        """A change the exchange made, priced by the account's latest trade on that side (else ``price``)."""
        side = "buy" if diff > 0 else "sell"
        trades = call(self.ex.fetch_my_trades, self.market, int(step.now * 1000) - 3 * 86_400_000)
        last = [t for t in trades if t.get("side") == side][-1:]
        px = float(last[0]["price"]) if last else price
        fee = float((last[0].get("fee") or {}).get("cost") or 0) if last else 0.0
        return step.book(order_id, side, abs(diff), px, fee, reason=reason)

    def match(self, orders: list[Order], candle: Candle, step: Step) -> list[Fill]:
        out = []
        for f in self.stop.triggered() if self.stop is not None else []:  # our stop filled since the last look
            out.append(step.book(f"{self.symbol}-{candle.ts}-{step.gen}-exchange_stop", "sell", f.qty, f.price,
                                 f.fee, reason="stop_loss"))
        for order in orders:
            exchange_id = self.exchange_ids.get(order.id)
            if exchange_id is None:
                continue
            fills, still_open = self.orders.poll(exchange_id, order.filled)
            out += [step.book(order.id, order.side, f.qty, f.price, f.fee, liquidity="maker", reason="limit")
                    for f in fills]
            if not still_open and order.remaining > 1e-12:
                step.record({"type": "cancel", "id": order.id, "candle_ts": step.ts, "reason": "closed"})
        return out

    def submit(self, order: Order, step: Step, *, at: float | None, liquidity: str) -> list[Fill]:
        if order.side == "sell" and self.stop is not None:
            self.stop.lift()  # the base it covers is locked on the exchange; placed again after this order
        params = {"reduceOnly": True} if self.perp is not None and order.reduce_only else None
        try:
            exchange_id, fills = self.orders.submit(order.id, order.side, order.kind, order.qty, order.price, params)
        except OrderRejected as exc:
            step.record({"type": "reject", "id": order.id, "candle_ts": step.ts, "reason": str(exc)})
            step.record({"type": "cancel", "id": order.id, "candle_ts": step.ts, "reason": "rejected"})
            log.warning("exchange rejected order %s: %s", order.id, exc, extra={"symbol": self.symbol})
            return []
        self.exchange_ids[order.id] = exchange_id
        step.record({"type": "ack", "id": order.id, "exchange_id": exchange_id, "candle_ts": step.ts})
        if self.perp is not None and fills:  # a futures order's answer carries no commission: its trades do
            fills = [ExchangeFill(f.qty, f.price, self.perp.commission(exchange_id)) for f in fills]
        return [step.book(order.id, order.side, f.qty, f.price, f.fee, liquidity=liquidity, reason=order.reason)
                for f in fills]

    def cancel(self, order: Order, step: Step) -> None:
        exchange_id = self.exchange_ids.pop(order.id, None)
        if exchange_id is not None:
            self.orders.cancel(exchange_id)

    def protect(self, covered: float, avg_price: float, tag: str, step: Step) -> None:
        if self.perp_stop is not None:
            self.perp_stop.sync(covered, avg_price, tag)
        elif self.stop is not None:
            self.stop.sync(covered, avg_price, tag)
