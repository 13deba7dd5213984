"""The one execution model, for engines (paper and live) and the backtester alike: orders,
exchange rules, fills, protective exits, sizing, all written to a ledger.

Order of work on each closed candle (all from data known at its close, no look-ahead):
1. resting limit orders placed on earlier candles fill if the candle traded through their
   price (maker fee, at most ``max_participation`` of the candle's volume: partial fills);
2. stop-loss / take-profit of the open position (a gap through the level fills at the open);
3. the strategy's target is turned into an order, rounded and checked by the rules. It is
   decided at this candle's close and executed from the next candle on, never at a price that was
   gone by the time the order could be sent: a market order fills at the next candle's open
   (taker fee + slippage; on paper it rests in the book until then, live it goes out at once);
   a limit order rests ``limit_offset_bps`` inside the close.
Every order, cancel, reject and fill is written to the ledger (the engine's fsynced journal, or
a backtest's memory) before it takes effect, so the book and the position are rebuilt exactly
after a restart. An open position is re-sized only when the strategy's target changes, or, with
``rebalance_band`` set, when the size drifts beyond that fraction of its target: no fee-paying
churn while a signal stands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from backend.src.core.config import SymbolConfig
from backend.src.core.types import Candle, Signal
from backend.src.market.exchange_rules import MarketRules, OrderRejected
from backend.src.trading.execution import Fill, PaperBroker
from backend.src.trading.ledger import Ledger
from backend.src.trading.live_exec import LiveExecutor, ProtectiveStop
from backend.src.trading.sizing import Gate, Sizer

log = logging.getLogger(__name__)
PROTECTIVE = ("stop_loss", "take_profit")


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

    @property
    def remaining(self) -> float:
        return max(0.0, self.qty - self.filled)


def rules_for(cfg: SymbolConfig, exchange_rules: MarketRules | None) -> MarketRules:
    """The config's rules where it names any, else the exchange's (live), else none."""
    mine = MarketRules(cfg.tick_size, cfg.step_size, cfg.min_qty, cfg.min_notional)
    return mine if mine != MarketRules() or exchange_rules is None else exchange_rules


class Trader:
    def __init__(self, symbol: str, cfg: SymbolConfig, journal: Ledger, *, source_id: str,
                 exchange_rules: MarketRules | None = None, sizer: Sizer | None = None) -> None:
        self.symbol, self.cfg, self.journal, self.source_id = symbol, cfg, journal, source_id
        self.size, self.max_position = cfg.notional_caps(symbol)
        self.usd_per_quote = cfg.usd_per_quote(symbol)
        self.exchange_rules = exchange_rules
        self.exchange_fees: tuple[float | None, float | None] = (None, None)  # (taker, maker) from ccxt
        self.rules = rules_for(cfg, exchange_rules)
        self.broker = PaperBroker(symbol, initial_equity=cfg.initial_equity, fee_bps=cfg.fee_bps,
                                  slippage_bps=cfg.slippage_bps)
        self.broker.rebuild(journal.entries)
        self.orders: dict[str, Order] = {}
        self.last_candle = -1  # newest candle that produced a journal entry: never trade it twice
        self.blocked = False  # after a stop/take-profit: no re-entry until the signal goes flat
        self.live: LiveExecutor | None = None  # set: orders go to the exchange (--live)
        self.sizer = sizer  # risk-manager sizing; None: ``target × size`` (unit tests)
        self.gate: Gate | None = None  # set: portfolio slots and the global stop
        self.held_target: float | None = None  # the signal target the position was last sized for
        self.stamp: dict[str, str] = {}  # strategy hash and model version, written on every order
        self.entry_ts: int | None = None  # candle of the fill that opened the position
        self.exit_ts: int | None = None  # candle of the fill that last closed one
        self._pos = 0.0
        self.current: int | None = None  # the candle between begin_candle and end_candle
        self.position_before = 0.0
        self.exit_pcts: tuple[float | None, float | None] = (None, None)  # the strategy's own stops, if any
        self.exchange_ids: dict[str, str] = {}
        self.stop: ProtectiveStop | None = None  # live: the stop-loss resting on the exchange
        for e in journal.entries:
            self._replay(e)

    def _replay(self, e: dict[str, Any]) -> None:
        kind = e["type"]
        if kind == "order":
            self.orders[e["id"]] = Order(e["id"], e["side"], e["kind"], float(e["qty"]), float(e["price"]),
                                         int(e["candle_ts"]), reason=str(e.get("reason", "")))
            self.held_target = float(e["target"]) if "target" in e else None
        elif kind == "cancel":
            self.orders.pop(e["id"], None)
        elif kind == "ack":
            self.exchange_ids[e["id"]] = e["exchange_id"]
        elif kind == "fill":
            self._track_position(e)
            order = self.orders.get(e["order_id"])
            if order is not None:
                order.filled += float(e["qty"])
                if order.remaining <= 1e-12:
                    del self.orders[order.id]
            self.blocked = e.get("reason") in PROTECTIVE
        elif kind == "signal_flat":
            self.blocked = False
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

    def _record(self, entry: dict[str, Any], gen: int) -> dict[str, Any]:
        full = self.journal.append({**entry, "source": self.source_id}, gen=gen)
        self._replay(full)
        return full

    def apply_config(self, cfg: SymbolConfig) -> None:
        taker, maker = self.exchange_fees
        if cfg.fees_from_exchange and taker is not None and maker is not None:
            cfg = cfg.model_copy(update={"fee_bps": float(taker) * 10_000, "maker_fee_bps": float(maker) * 10_000})
        self.cfg = cfg
        self.size, self.max_position = cfg.notional_caps(self.symbol)
        self.usd_per_quote = cfg.usd_per_quote(self.symbol)
        self.rules = rules_for(cfg, self.exchange_rules)
        self.broker.fee_rate = cfg.fee_bps / 10_000
        self.broker.slippage = cfg.slippage_bps / 10_000

    # ------------------------------------------------------------------ per candle

    def on_candle(self, candle: Candle, sig: Signal | None, *, gen: int, now: float,
                  fence: Callable[[], None]) -> list[Fill]:
        """Both halves at once, for a signal decided without the position (tests, simple callers)."""
        fills = self.begin_candle(candle, gen=gen, now=now, fence=fence)
        return fills + self.end_candle(candle, sig, gen=gen, now=now, fence=fence)

    def begin_candle(self, candle: Candle, *, gen: int, now: float, fence: Callable[[], None]) -> list[Fill]:
        """What happened during the candle: orders from earlier closes filled, stops hit. The strategy
        decides after this, on the position as it stands at the close."""
        self.current = candle.ts if candle.ts > self.last_candle else None  # None: traded before a restart
        if self.current is None:
            return []
        self.position_before = self.broker.qty
        fills = self._stop_fills(candle, gen, now)
        fills += self._match_resting(candle, gen, now, fence)
        return fills + self._protect(candle, gen, now, fence)

    def end_candle(self, candle: Candle, sig: Signal | None, *, gen: int, now: float,
                   fence: Callable[[], None]) -> list[Fill]:
        """The strategy's decision at the close, turned into orders."""
        if self.current != candle.ts:
            return []
        fills = self._rebalance(candle, sig, gen, now, fence) if sig is not None else []
        if self.position_before and not self.broker.qty and self.gate is not None:
            self.gate.flat()
        self._sync_stop(f"{self.symbol}-{candle.ts}-{gen}-stop")
        return fills

    def _stop_fills(self, candle: Candle, gen: int, now: float) -> list[Fill]:
        """Live: the exchange filled our protective stop since the last candle."""
        if self.stop is None:
            return []
        out = []
        for f in self.stop.triggered():
            fill = Fill(f"{self.symbol}-{candle.ts}-{gen}-exchange_stop", "sell", f.qty, f.price, f.fee, candle.ts, now)
            self._record({**fill.as_entry(), "reason": "stop_loss"}, gen)
            self.broker.apply(fill)
            out.append(fill)
        return out

    def _sync_stop(self, tag: str) -> None:
        if self.stop is not None:
            resting_sells = sum(o.remaining for o in self.orders.values() if o.side == "sell")
            self.stop.sync(self.broker.qty - resting_sells, self.broker.avg_price, tag)

    def flatten(self, price: float, ts: int, *, gen: int, now: float, reason: str) -> list[Fill]:
        """Close everything now at ``price`` (global stop): cancel resting orders, exit the position."""
        candle = Candle(max(ts, self.last_candle), price, price, price, price, 0.0)
        for order in list(self.orders.values()):
            self._cancel(order, candle, gen, reason)
        qty = self.broker.qty
        if not qty or price <= 0:
            return []
        side = "sell" if qty > 0 else "buy"
        order = Order(f"{self.symbol}-{candle.ts}-{gen}-{reason}"[:60], side, "market", abs(qty), 0.0, candle.ts)
        self._record({"type": "order", **asdict(order), "reason": reason, **self.stamp}, gen)
        slip = self.broker.slippage
        fills = self._execute(order, candle, gen, now, reason, price * (1 - slip if side == "sell" else 1 + slip),
                              "taker")
        if not self.broker.qty and self.gate is not None:
            self.gate.flat()
        self._sync_stop(f"{order.id}-stop")
        return fills

    def _fill(self, order: Order, qty: float, price: float, liquidity: str, candle: Candle, gen: int, now: float,
              reason: str, fee: float | None = None) -> Fill:
        fee_bps = self.cfg.maker_fee_bps if liquidity == "maker" else self.cfg.fee_bps
        px = self.rules.round_fill_price(price) if fee is None else price
        fill = Fill(order.id, order.side, qty, px, qty * px * fee_bps / 10_000 if fee is None else fee, candle.ts, now)
        self._record({**fill.as_entry(), "liquidity": liquidity, "reason": reason}, gen)
        self.broker.apply(fill)
        return fill

    def _execute(self, order: Order, candle: Candle, gen: int, now: float, reason: str, paper_price: float,
                 liquidity: str) -> list[Fill]:
        """Paper: fill now at ``paper_price``. Live: send it; journal the exchange's answer."""
        if self.live is None:
            return [self._fill(order, order.qty, paper_price, liquidity, candle, gen, now, reason)]
        if order.side == "sell" and self.stop is not None:
            self.stop.lift()  # the base it covers is locked on the exchange; placed again after this order
        try:
            exchange_id, fills = self.live.submit(order.id, order.side, order.kind, order.qty, order.price)
        except OrderRejected as exc:
            self._record({"type": "reject", "id": order.id, "candle_ts": candle.ts, "reason": str(exc)}, gen)
            self._record({"type": "cancel", "id": order.id, "candle_ts": candle.ts, "reason": "rejected"}, gen)
            log.warning("exchange rejected order %s: %s", order.id, exc, extra={"symbol": self.symbol})
            return []
        self._record({"type": "ack", "id": order.id, "exchange_id": exchange_id, "candle_ts": candle.ts}, gen)
        return [self._fill(order, f.qty, f.price, liquidity, candle, gen, now, reason, fee=f.fee) for f in fills]

    def _cancel(self, order: Order, candle: Candle, gen: int, reason: str) -> None:
        if self.live is not None and order.id in self.exchange_ids:
            self.live.cancel(self.exchange_ids[order.id])
        self._record({"type": "cancel", "id": order.id, "candle_ts": candle.ts, "reason": reason}, gen)

    def attach_live(self, executor: LiveExecutor, price: float, gen: int, now: float) -> None:
        """Reconcile with the exchange before trading: cancel leftovers, adopt its position."""
        position, cancelled = executor.reconcile()
        self.live = executor
        for order in list(self.orders.values()):
            self._record({"type": "cancel", "id": order.id, "candle_ts": -1, "reason": "reconcile"}, gen)
        diff = position - self.broker.qty
        if abs(diff) > max(self.rules.step_size, 1e-12):
            fill = Fill(f"reconcile-{int(now)}", "buy" if diff > 0 else "sell", abs(diff), price, 0.0, -1, now)
            self._record({**fill.as_entry(), "reason": "reconcile"}, gen)
            self.broker.apply(fill)
        log.info("reconciled with the exchange: position %s, %d open order(s) cancelled", position, cancelled,
                 extra={"symbol": self.symbol})
        self.stop = ProtectiveStop(executor, self.cfg.protective_stop_pct, lambda e: self._record(e, gen))
        self._sync_stop(f"{self.symbol}-{int(now)}-{gen}-stop")

    def _poll_live(self, live: LiveExecutor, candle: Candle, gen: int, now: float) -> list[Fill]:
        out: list[Fill] = []
        for order in list(self.orders.values()):
            exchange_id = self.exchange_ids.get(order.id)
            if exchange_id is None:
                continue
            fills, still_open = live.poll(exchange_id, order.filled)
            out += [self._fill(order, f.qty, f.price, "maker", candle, gen, now, "limit", fee=f.fee) for f in fills]
            if not still_open and order.id in self.orders:
                self._record({"type": "cancel", "id": order.id, "candle_ts": candle.ts, "reason": "closed"}, gen)
        return out

    def _match_resting(self, candle: Candle, gen: int, now: float, fence: Callable[[], None]) -> list[Fill]:
        if self.live is not None:
            return self._poll_live(self.live, candle, gen, now)
        out = []
        for order in list(self.orders.values()):
            if order.candle_ts >= candle.ts:
                continue
            buy = order.side == "buy"
            if order.kind == "market":  # decided at an earlier close: filled at this candle's open
                quote = self.broker.quote(order.side, order.remaining, candle.open, order_id=order.id,
                                          candle_ts=candle.ts, now=now)
                fence()
                out.append(self._fill(order, order.remaining, quote.price, "taker", candle, gen, now, order.reason))
                continue
            if not (candle.low <= order.price if buy else candle.high >= order.price):
                continue
            cap = candle.volume * self.cfg.max_participation
            qty = self.rules.round_qty(min(order.remaining, cap)) if cap > 0 else 0.0
            if qty <= 0:
                continue
            price = min(order.price, candle.open) if buy else max(order.price, candle.open)
            fence()
            out.append(self._fill(order, qty, price, "maker", candle, gen, now, "limit"))
        return out

    def _protect(self, candle: Candle, gen: int, now: float, fence: Callable[[], None]) -> list[Fill]:
        qty, avg = self.broker.qty, self.broker.avg_price
        sl, tp = self.stops()
        if not qty or not (sl or tp):
            return []
        long = qty > 0
        stop = avg * (1 - sl / 100) if long else avg * (1 + sl / 100)
        take = avg * (1 + tp / 100) if long else avg * (1 - tp / 100)
        hit_stop = sl and (candle.low <= stop if long else candle.high >= stop)
        hit_take = tp and (candle.high >= take if long else candle.low <= take)
        if not (hit_stop or hit_take):
            return []
        # Both inside one candle: the order of the two is unknown; assume the stop (conservative).
        reason, level = ("stop_loss", stop) if hit_stop else ("take_profit", take)
        gap = candle.open < level if long == (reason == "stop_loss") else candle.open > level
        price = candle.open if gap else level
        side = "sell" if long else "buy"
        slip = self.broker.slippage if reason == "stop_loss" else 0.0
        price = price * (1 - slip) if side == "sell" else price * (1 + slip)
        fence()
        for order in list(self.orders.values()):
            self._cancel(order, candle, gen, reason)
        order = Order(f"{self.symbol}-{candle.ts}-{gen}-{reason}", side, "market", abs(qty), 0.0, candle.ts)
        self._record({"type": "order", **asdict(order), "reason": reason, **self.stamp}, gen)
        liquidity = "taker" if reason == "stop_loss" else "maker"
        return self._execute(order, candle, gen, now, reason, price, liquidity)

    def _target_notional(self, sig: Signal) -> float:
        if (self.gate is not None and self.gate.halted_reason) or sig.target <= 0:
            return 0.0
        if sig.notional is not None:
            return min(sig.notional, self.max_position)
        cap = min(self.size, self.max_position)
        if self.sizer is not None:
            return self.sizer.target(sig, self.broker.equity, cap, self.stops()[0], self.usd_per_quote)
        return min(sig.target * self.size, self.max_position)

    def _settled(self, sig: Signal, target_qty: float) -> bool:
        """The open position already answers this signal: same target, within the band."""
        qty = self.broker.qty
        if not qty or sig.target != self.held_target or (target_qty > 0) != (qty > 0):
            return False
        band = self.cfg.rebalance_band
        return band is None or abs(target_qty - qty) <= band * abs(target_qty)

    def stops(self) -> tuple[float, float]:
        """(stop-loss %, take-profit %): the strategy's own where it sets them, else the config's."""
        sl, tp = self.exit_pcts
        return (self.cfg.stop_loss_pct if sl is None else sl, self.cfg.take_profit_pct if tp is None else tp)

    def _rebalance(self, candle: Candle, sig: Signal, gen: int, now: float, fence: Callable[[], None]) -> list[Fill]:
        cfg = self.cfg
        if self.blocked:
            if sig.target > 0:
                return []  # a protective exit stands until the strategy itself goes flat
            self._record({"type": "signal_flat", "candle_ts": candle.ts}, gen)
        target = self._target_notional(sig)
        target_qty = target / candle.close
        if self._settled(sig, target_qty):
            return []
        pending = sum(o.remaining if o.side == "buy" else -o.remaining for o in self.orders.values())
        delta = target_qty - self.broker.qty
        dust = 0.01 * self.size
        if abs(delta - pending) * candle.close < dust:
            return []  # resting orders already cover the target
        fence()
        for order in list(self.orders.values()):  # cancel-replace: one working order per symbol
            self._cancel(order, candle, gen, "replaced")
        if abs(delta) * candle.close < dust:
            return []
        side = "buy" if delta > 0 else "sell"
        if self.gate is not None and abs(target_qty) > abs(self.broker.qty) \
                and not self.gate.allow_open(target, self.broker.equity):
            return []  # a portfolio limit refuses the entry (logged by the gate)
        limit = cfg.order_type == "limit"
        offset = cfg.limit_offset_bps / 10_000
        ref = candle.close * (1 - offset if side == "buy" else 1 + offset) if limit else candle.close
        price = self.rules.round_price(ref, side) if limit else ref
        order_id = f"{self.symbol}-{candle.ts}-{gen}"
        try:
            qty = self.rules.check(abs(delta), price)
        except OrderRejected as exc:
            self._record({"type": "reject", "id": order_id, "side": side, "qty": abs(delta), "price": price,
                          "candle_ts": candle.ts, "reason": str(exc)}, gen)
            log.warning("order rejected: %s", exc, extra={"symbol": self.symbol})
            return []
        order = Order(order_id, side, "limit" if limit else "market", qty, price if limit else 0.0, candle.ts,
                      reason=sig.reason)
        self._record({"type": "order", **asdict(order), "target": sig.target, **self.stamp}, gen)
        if self.live is None:
            return []  # rests in the paper book: a market order fills at the next candle's open
        return self._execute(order, candle, gen, now, sig.reason, 0.0, "maker" if limit else "taker")
