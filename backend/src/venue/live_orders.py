"""Real orders on an exchange through ccxt (``--live`` with keys in the environment only): the
calls ``LiveVenue`` makes.

Order placement is never retried blindly (a timeout may hide a placed order): the order
carries our id as ``clientOrderId`` and an unknown outcome is resolved by asking the
exchange for that id.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backend.src.market.exchange import ExchangeUnavailable, call
from backend.src.market.exchange_rules import OrderRejected

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExchangeFill:
    qty: float
    price: float
    fee: float


def client_id(order_id: str) -> str:
    """Exchange-safe client order id (Binance: 1-36 chars of [A-Za-z0-9._:/-])."""
    return order_id if len(order_id) <= 36 else "lb-" + hashlib.sha1(order_id.encode()).hexdigest()[:32]  # noqa: S324


class LiveExecutor:
    def __init__(self, ex: Any, market: str) -> None:
        self.ex, self.market = ex, market
        self.base = market.split("/")[0]

    def _fills(self, res: dict[str, Any], already: float) -> list[ExchangeFill]:
        filled = float(res.get("filled") or 0)
        if filled <= already + 1e-12:
            return []
        price = float(res.get("average") or res.get("price") or 0)
        fee = float((res.get("fee") or {}).get("cost") or 0) if not already else 0.0
        return [ExchangeFill(filled - already, price, fee)]

    def submit(self, order_id: str, side: str, kind: str, qty: float, price: float,
               params: dict[str, Any] | None = None) -> tuple[str, list[ExchangeFill]]:
        """Place the order; (exchange id, immediate fills). OrderRejected if the exchange refuses it."""
        import ccxt  # noqa: PLC0415

        cid = client_id(order_id)
        try:
            res = self.ex.create_order(self.market, kind, side, qty, price if kind == "limit" else None,
                                       {"newClientOrderId": cid, **(params or {})})
        except ccxt.ExchangeError as exc:  # the exchange's refusal (funds, margin -2019, notional -4164, reduce-only)
            raise OrderRejected(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        except ccxt.OperationFailed:
            res = self._lookup(cid)  # did it reach the exchange? ask, never place twice
            if res is None:
                raise OrderRejected("not placed: the exchange did not answer and has no such order") from None
        return str(res["id"]), self._fills(res, 0.0)

    def place_stop(self, cid: str, qty: float, stop: float, limit: float) -> str:
        """A stop-loss-limit sell resting on the exchange; its exchange id. OrderRejected if refused."""
        import ccxt  # noqa: PLC0415

        try:
            res = self.ex.create_order(self.market, "STOP_LOSS_LIMIT", "sell", qty, limit,
                                       {"stopPrice": stop, "timeInForce": "GTC", "newClientOrderId": cid})
        except (ccxt.InsufficientFunds, ccxt.InvalidOrder, ccxt.BadRequest) as exc:
            raise OrderRejected(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        except ccxt.OperationFailed:
            res = self._lookup(cid)
            if res is None:
                raise OrderRejected("stop not placed: the exchange did not answer and has no such order") from None
        return str(res["id"])

    def _lookup(self, cid: str) -> dict[str, Any] | None:
        import ccxt  # noqa: PLC0415

        try:
            result: dict[str, Any] = call(self.ex.fetch_order, None, self.market, {"origClientOrderId": cid})
            return result
        except (ccxt.OrderNotFound, ccxt.BadRequest):
            return None

    def poll(self, exchange_id: str, already: float) -> tuple[list[ExchangeFill], bool]:
        """New fills of a resting order since ``already``; and whether it is still open."""
        res = call(self.ex.fetch_order, exchange_id, self.market)
        return self._fills(res, already), res.get("status") == "open"

    def cancel(self, exchange_id: str) -> None:
        import ccxt  # noqa: PLC0415

        try:
            call(self.ex.cancel_order, exchange_id, self.market)
        except ccxt.OrderNotFound:
            pass  # already filled or cancelled

    def reconcile(self) -> tuple[float, int]:
        """Cancel open orders on our market; return (exchange position in base units, cancelled)."""
        try:
            open_orders = call(self.ex.fetch_open_orders, self.market)
            for o in open_orders:
                self.cancel(str(o["id"]))
            balance = call(self.ex.fetch_balance)
        except ExchangeUnavailable:
            raise
        total = float((balance.get(self.base) or {}).get("total") or 0)
        return total, len(open_orders)


class ProtectiveStop:
    """A stop-loss order resting on the exchange for the whole long position (live, spot).

    It protects a position whose engine has died (``on_failed``), whatever the process does.
    The engine lifts it before a sell of its own (the exchange locks the base it covers) and
    places it again for the position that results; a stop the exchange filled is reported as
    fills. Each placement and removal is journaled (``protect`` / ``unprotect``).
    """

    LIMIT_BELOW_STOP = 0.01  # the limit sits 1 % under the trigger, so a fast fall still fills

    def __init__(self, live: LiveExecutor, pct: float, record: Callable[[dict[str, Any]], object]) -> None:
        self.live, self.pct, self.record = live, pct, record
        self.exchange_id: str | None = None
        self.qty = self.stop = 0.0

    def lift(self) -> None:
        if self.exchange_id is None:
            return
        self.live.cancel(self.exchange_id)
        self.record({"type": "unprotect", "exchange_id": self.exchange_id})
        self.exchange_id = None

    def sync(self, qty: float, avg_price: float, tag: str) -> None:
        """Cover ``qty`` (base units) with a stop ``pct`` below ``avg_price``; nothing when flat."""
        if qty <= 0 or avg_price <= 0:
            self.lift()
            return
        stop = avg_price * (1 - self.pct / 100)
        if self.exchange_id is not None and math.isclose(qty, self.qty, rel_tol=1e-9) \
                and math.isclose(stop, self.stop, rel_tol=1e-9):
            return
        self.lift()
        try:
            eid = self.live.place_stop(client_id(tag), qty, stop, stop * (1 - self.LIMIT_BELOW_STOP))
        except OrderRejected as exc:
            self.record({"type": "reject", "id": tag, "reason": f"protective stop: {exc}"})
            log.error("protective stop not placed on the exchange: %s", exc, extra={"alert": True})
            return
        self.exchange_id, self.qty, self.stop = eid, qty, stop
        self.record({"type": "protect", "exchange_id": eid, "qty": qty, "stop_price": stop})

    def triggered(self) -> list[ExchangeFill]:
        """Fills of our stop since the last look (it triggered on the exchange)."""
        if self.exchange_id is None:
            return []
        fills, still_open = self.live.poll(self.exchange_id, 0.0)
        if not still_open:
            self.exchange_id = None
        return fills
