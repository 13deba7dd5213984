"""The trader: what to do about one symbol, for engines (paper and live) and the backtester alike.
It turns the strategy's target into orders (sizing, exchange rules, the portfolio gate), watches the
stop-loss and take-profit, and journals everything; its venue (``backend.src.venue``) carries the
orders out and reports the fills, which the trader journals and books.

Order of work on each closed candle (all from data known at its close, no look-ahead):
1. perpetuals: funding on the position held into a funding time (at the candle's open);
2. the venue reports what resting orders did during the candle (paper: a market order decided at
   the last close fills at this open; a limit fills if the candle traded through its price);
3. liquidation, stop-loss, take-profit of the open position (a gap through a level fills at the open;
   a stop inside the liquidation price is hit first unless the open gapped through both);
4. the strategy's target (in [-1, 1]: shorts on perpetuals only) is turned into orders, rounded and
   checked by the rules and the margin; long to short is a reduce-only close and an open. It is
   decided at this candle's close and handed to the venue, which executes it from the next candle
   on (paper) or sends it at once (live); a limit order rests ``limit_offset_bps`` inside the close.
Every order, cancel, reject and fill is written to the journal (the engine's fsynced file, or a
backtest's memory) before it takes effect, so the orders and the position book are rebuilt exactly
after a restart. An open position is re-sized only when the strategy's target changes, or, with
``rebalance_band`` set, when the size drifts beyond that fraction of its target: no fee-paying
churn while a signal stands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from backend.src.core.config import SymbolConfig
from backend.src.core.types import Candle, Signal
from backend.src.market.exchange_rules import MarketRules, MarketTerms, OrderRejected
from backend.src.trading.book import PositionBook
from backend.src.trading.journal import Journal
from backend.src.trading.margin import Margin
from backend.src.trading.sizing import Gate, OpenGate, Sizer
from backend.src.venue.base import Venue
from backend.src.venue.orders import Fill, Order, Step

log = logging.getLogger(__name__)
PROTECTIVE = ("stop_loss", "take_profit", "liquidation")


def no_fence() -> None:
    return None


def rules_for(cfg: SymbolConfig, exchange_rules: MarketRules | None) -> MarketRules:
    """The config's rules where it names any, else the exchange's (a live feed), else none."""
    mine = MarketRules(cfg.tick_size, cfg.step_size, cfg.min_qty, cfg.min_notional)
    return mine if mine != MarketRules() or exchange_rules is None else exchange_rules


class Trader:
    def __init__(self, symbol: str, cfg: SymbolConfig, journal: Journal, venue: Venue, *, source_id: str,
                 sizer: Sizer | None = None, gate: Gate | None = None) -> None:
        self.symbol, self.journal, self.venue, self.source_id = symbol, journal, venue, source_id
        self.terms: MarketTerms | None = None  # the exchange market's rules and fees, once connected
        self.book = PositionBook(symbol, initial_equity=cfg.initial_equity, leverage=cfg.leverage)
        self.apply_config(cfg)
        self.book.rebuild(journal.entries)
        self.orders: dict[str, Order] = {}
        self.last_candle = -1  # newest candle that produced a journal entry: never trade it twice
        self.blocked = 0  # after a protective exit of a long (1) or short (-1): no re-entry on that side
        self.sizer = sizer  # risk-manager sizing; None: ``target × size`` (unit tests)
        self.gate: Gate = gate or OpenGate()  # portfolio slots and the global stop
        self.held_target: float | None = None  # the signal target the position was last sized for
        self.stamp: dict[str, str] = {}  # strategy hash and model version, written on every order
        self.entry_ts: int | None = None  # candle of the fill that opened the position
        self.exit_ts: int | None = None  # candle of the fill that last closed one
        self._pos = 0.0
        self.current: int | None = None  # the candle between begin_candle and end_candle
        self.position_before = 0.0
        self.exit_pcts: tuple[float | None, float | None] = (None, None)  # the strategy's own stops, if any
        self.liquidations = 0  # liquidation fills in the journal
        for e in journal.entries:
            self._replay(e)

    def _replay(self, e: dict[str, Any]) -> None:
        kind = e["type"]
        if kind == "order":
            self.orders[e["id"]] = Order(e["id"], e["side"], e["kind"], float(e["qty"]), float(e["price"]),
                                         int(e["candle_ts"]), reason=str(e.get("reason", "")),
                                         reduce_only=bool(e.get("reduce_only", False)))
            self.held_target = float(e["target"]) if "target" in e else None
        elif kind == "cancel":
            self.orders.pop(e["id"], None)
        elif kind == "fill":
            self._track_position(e)
            order = self.orders.get(e["order_id"])
            if order is not None:
                order.filled += float(e["qty"])
                if order.remaining <= 1e-12:
                    del self.orders[order.id]
            self.blocked = (1 if e["side"] == "sell" else -1) if e.get("reason") in PROTECTIVE else 0
            self.liquidations += e.get("reason") == "liquidation"
        elif kind == "signal_flat":
            self.blocked = 0
        if "candle_ts" in e:
            self.last_candle = max(self.last_candle, int(e["candle_ts"]))

    def _track_position(self, e: dict[str, Any]) -> None:
        """Entry/exit candles, from the fills (so they survive a restart like the position)."""
        qty = float(e["qty"]) if e["side"] == "buy" else -float(e["qty"])
        before = self._pos
        self._pos += qty
        if abs(self._pos) < 1e-12:
            self._pos = 0.0
        if not before and self._pos:
            self.entry_ts = int(e["candle_ts"])
        elif before and not self._pos:
            self.exit_ts = int(e["candle_ts"])

    # ------------------------------------------------------------------ the desk the venue reports to (``Desk``)

    def record(self, entry: dict[str, Any], gen: int) -> dict[str, Any]:
        full = self.journal.append({**entry, "source": self.source_id}, gen=gen)
        self._replay(full)
        return full

    def book_fill(self, fill: Fill, gen: int, tags: dict[str, str]) -> Fill:
        self.record({**fill.as_entry(), **tags}, gen)
        self.book.apply(fill)
        return fill

    def book_funding(self, entry: dict[str, Any], gen: int) -> None:
        self.record(entry, gen)
        self.book.fund(float(entry["amount"]))

    def step(self, ts: int, gen: int, now: float, fence: Callable[[], None] = no_fence) -> Step:
        """The context of one call (one candle's two halves share it): what the venue reports through."""
        return Step(ts, gen, now, fence, self)

    # ------------------------------------------------------------------ config and venue

    def apply_config(self, cfg: SymbolConfig) -> None:
        terms = self.terms
        if cfg.fees_from_exchange and terms is not None and terms.taker is not None and terms.maker is not None:
            cfg = cfg.model_copy(update={"fee_bps": float(terms.taker) * 10_000,
                                         "maker_fee_bps": float(terms.maker) * 10_000})
        self.cfg = cfg
        self.size, self.max_position = cfg.notional_caps(self.symbol)
        self.usd_per_quote = cfg.usd_per_quote(self.symbol)
        self.rules = rules_for(cfg, terms.rules if terms is not None else None)
        self.margin = Margin(self.symbol, cfg, terms.brackets if terms is not None else None) \
            if cfg.perpetual else None
        self.book.leverage = cfg.leverage
        self.venue.configure(cfg, self.rules)

    def connect(self, price: float, *, gen: int, now: float) -> None:
        """Before the first candle: take the venue's market terms, reconcile with it, protect the position."""
        self.terms = self.venue.terms()
        self.apply_config(self.cfg)
        step = self.step(-1, gen, now)
        funded = max((int(e.get("exchange_ts", 0)) for e in self.journal.of_type("funding")), default=0)
        self.venue.connect(list(self.orders.values()), self.book.qty, price, step, funded_ms=funded)
        self._protect_on_venue(f"{self.symbol}-{int(now)}-{gen}-stop", step)

    def _protect_on_venue(self, tag: str, step: Step) -> None:
        qty = covered = self.book.qty
        if qty and self.orders:  # what resting orders would close is not the stop's to cover
            closing = "sell" if qty > 0 else "buy"
            resting = sum(o.remaining for o in self.orders.values() if o.side == closing)
            covered = max(0.0, abs(qty) - resting) * (1 if qty > 0 else -1)
        self.venue.protect(covered, self.book.avg_price, tag, step)

    def exposure(self) -> dict[str, str | float]:
        """What status shows of the position: side, market, leverage, isolated margin, liquidation price,
        funding paid (-) or received (+) in total."""
        b = self.book
        return {"side": "long" if b.qty > 0 else "short" if b.qty < 0 else "flat", "market": self.cfg.market,
                "leverage": self.cfg.leverage, "margin": round(b.margin, 6) if self.margin is not None else "",
                "liquidation_price": round(self.margin.liquidation(b), 8) if self.margin is not None else "",
                "funding": round(b.funding, 6), "liquidations": self.liquidations}

    # ------------------------------------------------------------------ per candle

    def begin_candle(self, candle: Candle, step: Step) -> list[Fill]:
        """What happened during the candle: orders from earlier closes filled, stops hit. The strategy
        decides after this, on the position as it stands at the close."""
        self.current = candle.ts if candle.ts > self.last_candle else None  # None: traded before a restart
        if self.current is None:
            return []
        self.position_before = self.book.qty
        # perpetuals: funding, and what the exchange did to the position by itself
        fills = self.venue.settle(candle, self.book.qty, step) if self.margin is not None else []
        fills += self.venue.match(list(self.orders.values()), candle, step)
        return fills + self._protect(candle, step)

    def end_candle(self, candle: Candle, sig: Signal | None, step: Step) -> list[Fill]:
        """The strategy's decision at the close, turned into orders."""
        if self.current != candle.ts:
            return []
        fills = self._rebalance(candle, sig, step) if sig is not None else []
        if self.position_before and not self.book.qty:
            self.gate.flat()
        self._protect_on_venue(f"{self.symbol}-{candle.ts}-{step.gen}-stop", step)
        return fills

    def flatten(self, price: float, ts: int, *, gen: int, now: float, reason: str) -> list[Fill]:
        """Close everything now at ``price`` (global stop): cancel resting orders, exit the position."""
        step = self.step(max(ts, self.last_candle), gen, now)
        for order in list(self.orders.values()):
            self._cancel(order, step, reason)
        qty = self.book.qty
        if not qty or price <= 0:
            return []
        side = "sell" if qty > 0 else "buy"
        order = Order(f"{self.symbol}-{step.ts}-{gen}-{reason}"[:60], side, "market", abs(qty), 0.0, step.ts,
                      reason=reason, reduce_only=True)
        self.record({"type": "order", **asdict(order), "reason": reason, **self.stamp}, gen)
        fills = self.venue.submit(order, step, at=price, liquidity="taker")
        if not self.book.qty:
            self.gate.flat()
        self._protect_on_venue(f"{order.id}-stop", step)
        return fills

    def _cancel(self, order: Order, step: Step, reason: str) -> None:
        self.venue.cancel(order, step)
        self.record({"type": "cancel", "id": order.id, "candle_ts": step.ts, "reason": reason}, step.gen)

    def _protect(self, candle: Candle, step: Step) -> list[Fill]:
        qty, avg = self.book.qty, self.book.avg_price
        sl, tp = self.stops()
        liq = self.margin.liquidation(self.book) if self.margin is not None and qty else 0.0
        if not qty or not (sl or tp or liq):
            return []
        long = qty > 0
        stop = avg * (1 - sl / 100) if long else avg * (1 + sl / 100)
        take = avg * (1 + tp / 100) if long else avg * (1 - tp / 100)
        hit_stop = sl and (candle.low <= stop if long else candle.high >= stop)
        hit_take = tp and (candle.high >= take if long else candle.low <= take)
        hit_liq = liq > 0 and (candle.low <= liq if long else candle.high >= liq)
        if not (hit_stop or hit_take or hit_liq):
            return []
        # The stop is reached before the liquidation price when it sits inside it and the open did not gap
        # through the liquidation price; both inside one candle otherwise: assume the worse (conservative).
        stop_first = hit_stop and (stop > liq and candle.open > liq if long else stop < liq and candle.open < liq)
        if hit_liq and not stop_first:
            reason, level = "liquidation", liq
        else:
            reason, level = ("stop_loss", stop) if hit_stop else ("take_profit", take)
        gap = candle.open < level if long == (reason != "take_profit") else candle.open > level
        step.fence()
        for order in list(self.orders.values()):
            self._cancel(order, step, reason)
        order = Order(f"{self.symbol}-{candle.ts}-{step.gen}-{reason}", "sell" if long else "buy", "market", abs(qty),
                      0.0, candle.ts, reason=reason, reduce_only=True)
        self.record({"type": "order", **asdict(order), **self.stamp}, step.gen)
        if reason == "liquidation":  # isolated margin: filled at the liquidation price, whatever the open
            return self.venue.liquidate(order, level, step)
        # a stop-loss is taken at market (slippage, taker fee); a take-profit rests at its level (maker)
        liquidity = "taker" if reason == "stop_loss" else "maker"
        return self.venue.submit(order, step, at=candle.open if gap else level, liquidity=liquidity)

    def _target_notional(self, sig: Signal) -> float:
        """Signed notional: a short (target < 0) only where the market can be sold short."""
        if self.gate.halted_reason or not sig.target or (sig.target < 0 and self.margin is None):
            return 0.0
        side = 1.0 if sig.target > 0 else -1.0
        if sig.notional is not None:
            return side * min(sig.notional, self.max_position)
        cap = min(self.size, self.max_position)
        if self.sizer is not None:
            return side * self.sizer.target(sig, self.book.equity, cap, self.stops()[0], self.usd_per_quote)
        return side * min(abs(sig.target) * self.size, self.max_position)

    def _settled(self, sig: Signal, target_qty: float) -> bool:
        """The open position already answers this signal: same target, within the band."""
        qty = self.book.qty
        if not qty or sig.target != self.held_target or (target_qty > 0) != (qty > 0):
            return False
        band = self.cfg.rebalance_band
        return band is None or abs(target_qty - qty) <= band * abs(target_qty)

    def stops(self) -> tuple[float, float]:
        """(stop-loss %, take-profit %): the strategy's own where it sets them, else the config's."""
        sl, tp = self.exit_pcts
        return (self.cfg.stop_loss_pct if sl is None else sl, self.cfg.take_profit_pct if tp is None else tp)

    def _rebalance(self, candle: Candle, sig: Signal, step: Step) -> list[Fill]:
        if self.blocked:
            if sig.target * self.blocked > 0:
                return []  # a protective exit stands until the strategy itself leaves that side
            self.record({"type": "signal_flat", "candle_ts": candle.ts}, step.gen)
        target = self._target_notional(sig)
        target_qty = target / candle.close
        if self._settled(sig, target_qty):
            return []
        held = self.book.qty
        pending = sum(o.remaining if o.side == "buy" else -o.remaining for o in self.orders.values())
        delta = target_qty - held
        dust = 0.01 * self.size
        if abs(delta - pending) * candle.close < dust:
            return []  # resting orders already cover the target
        step.fence()
        for order in list(self.orders.values()):  # cancel-replace: one working order per symbol
            self._cancel(order, step, "replaced")
        if abs(delta) * candle.close < dust:
            return []
        fills: list[Fill] = []
        flip = bool(held and target_qty and (target_qty > 0) != (held > 0))
        if flip:  # long <-> short: a reduce-only close, then the open
            fills += self._order(candle, -held, sig, step, suffix="-close", reduce_only=True)
            if not self.orders and self.book.qty:
                return fills  # the close was refused: never open the other way on top of it
            delta = target_qty
        opening = bool(target_qty) and (flip or abs(target_qty) > abs(held))  # closing never asks anyone
        if opening and not self._may_open(target, target_qty, candle, step):
            return fills
        reducing = not opening and abs(target_qty) < abs(held)
        return fills + self._order(candle, delta, sig, step, suffix="", reduce_only=reducing)

    def _may_open(self, target: float, target_qty: float, candle: Candle, step: Step) -> bool:
        """The margin (perpetuals: liquidation, leverage, stop inside) and the portfolio admit the entry."""
        if self.margin is not None:
            atr = self.sizer.atr if self.sizer is not None else 0.0
            why = self.margin.refuse(self.book, target_qty, candle.close, self.stops()[0], atr)
            if why:
                self.record({"type": "reject", "id": f"{self.symbol}-{candle.ts}-{step.gen}",
                             "side": "buy" if target_qty > 0 else "sell", "qty": abs(target_qty),
                             "price": candle.close, "candle_ts": candle.ts, "reason": why}, step.gen)
                log.warning("entry refused: %s", why, extra={"symbol": self.symbol})
                return False
        return self.gate.allow_open(target, self.book.equity)  # a refusal is logged by the gate

    def _order(self, candle: Candle, delta: float, sig: Signal, step: Step, *, suffix: str,
               reduce_only: bool) -> list[Fill]:
        cfg = self.cfg
        side = "buy" if delta > 0 else "sell"
        limit = cfg.order_type == "limit" and not suffix  # a flip's close goes at market
        offset = cfg.limit_offset_bps / 10_000
        ref = candle.close * (1 - offset if side == "buy" else 1 + offset) if limit else candle.close
        price = self.rules.round_price(ref, side) if limit else ref
        order_id = f"{self.symbol}-{candle.ts}-{step.gen}{suffix}"
        try:
            qty = abs(delta) if reduce_only and suffix else self.rules.check(abs(delta), price)
        except OrderRejected as exc:
            self.record({"type": "reject", "id": order_id, "side": side, "qty": abs(delta), "price": price,
                         "candle_ts": candle.ts, "reason": str(exc)}, step.gen)
            log.warning("order rejected: %s", exc, extra={"symbol": self.symbol})
            return []
        order = Order(order_id, side, "limit" if limit else "market", qty, price if limit else 0.0, candle.ts,
                      reason=sig.reason, reduce_only=reduce_only)
        self.record({"type": "order", **asdict(order), "target": sig.target, **self.stamp}, step.gen)
        return self.venue.submit(order, step, at=None, liquidity="maker" if limit else "taker")
