"""The calls a live venue makes on a USD-margined perpetual (Binance USDT-M through ccxt), beside the
spot ones in ``live_orders``.

- before the first order: isolated margin and the leverage are set on the exchange (a refusal is one
  line naming the field), and the exchange's own maintenance brackets are read;
- the position is the exchange's position (``positionRisk``), not a balance;
- orders that only close carry ``reduceOnly`` (the exchange refuses one that would open the other
  way); their commission comes from the account's trades;
- the protective stop is a ``STOP_MARKET`` with ``closePosition`` (a conditional order), below a long or
  above a short, re-placed after every change;
- funding is the account's ``FUNDING_FEE`` income; a liquidation is the exchange's forced order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from backend.src.core.errors import UsageError
from backend.src.market.exchange import call
from backend.src.market.perpetual import Brackets
from backend.src.venue.live_orders import client_id

log = logging.getLogger(__name__)


class PerpAccount:
    def __init__(self, ex: Any, market: str) -> None:
        self.ex, self.market = ex, market  # built with the engine: no network call until the venue connects

    @property
    def exchange_symbol(self) -> str:
        call(self.ex.load_markets)  # ccxt keeps the markets once loaded
        return str(self.ex.market(self.market)["id"])

    def setup(self, leverage: float) -> None:
        """Isolated margin and ``leverage`` on the exchange, before the first order."""
        import ccxt  # noqa: PLC0415

        try:
            call(self.ex.set_margin_mode, "isolated", self.market)
        except ccxt.MarginModeAlreadySet:
            pass
        except ccxt.ExchangeError as exc:  # e.g. -4048: a position is open in cross margin
            raise UsageError(f"margin_mode: the exchange refuses isolated margin for {self.market}: {exc}") from exc
        try:
            call(self.ex.set_leverage, int(leverage), self.market)
        except ccxt.ExchangeError as exc:
            raise UsageError(f"leverage: the exchange refuses {leverage:g}x for {self.market}: {exc}") from exc

    def brackets(self) -> Brackets:
        tiers = call(self.ex.fetch_leverage_tiers, [self.market])[self.market]
        return Brackets.from_rows([{"notionalFloor": t["minNotional"], "notionalCap": t["maxNotional"],
                                    "initialLeverage": t["maxLeverage"], "maintMarginRatio": t["maintenanceMarginRate"],
                                    **({"cum": float(t["info"]["cum"])} if "cum" in (t.get("info") or {}) else {})}
                                   for t in tiers], f"{self.market} leverage brackets")

    def position(self) -> float:
        """The exchange's signed position, base units."""
        out = 0.0
        for p in call(self.ex.fetch_positions, [self.market]):
            qty = float(p.get("contracts") or 0) * float(p.get("contractSize") or 1)
            out += qty if p.get("side") == "long" else -qty
        return out

    def commission(self, exchange_id: str) -> float:
        """What the account's trades of an order cost (a futures order's answer holds no fee)."""
        trades = call(self.ex.fetch_my_trades, self.market, None, None, {"orderId": exchange_id})
        return sum(float((t.get("fee") or {}).get("cost") or 0) for t in trades)

    def funding(self, since_ms: int) -> list[tuple[int, float]]:
        """(time, amount received) of every funding payment since ``since_ms``."""
        rows = call(self.ex.fetch_funding_history, self.market, since_ms)
        return sorted((int(r["timestamp"]), float(r["amount"])) for r in rows if int(r["timestamp"]) >= since_ms)

    def forced(self, since_ms: int) -> list[dict[str, Any]]:
        """The exchange's liquidation orders on our market since ``since_ms``."""
        rows = call(self.ex.fapiPrivateGetForceOrders, {"symbol": self.exchange_symbol, "startTime": since_ms})
        return [r for r in rows if int(r.get("updateTime") or r.get("time") or 0) >= since_ms]

    def cancel_all(self) -> int:
        """Cancel our market's open orders, plain and conditional; how many."""
        import ccxt  # noqa: PLC0415

        n = 0
        for params in ({}, {"trigger": True}):
            for o in call(self.ex.fetch_open_orders, self.market, None, None, params):
                try:
                    call(self.ex.cancel_order, str(o["id"]), self.market, params)
                    n += 1
                except ccxt.OrderNotFound:
                    pass
        return n


class PerpStop:
    """A ``STOP_MARKET`` ``closePosition`` order resting on the exchange, ``pct`` beyond the average entry
    (below a long, above a short): the position stays protected when no engine runs. Each placement
    and removal is journaled (``protect`` / ``unprotect``)."""

    def __init__(self, account: PerpAccount, pct: float, record: Callable[[dict[str, Any]], object]) -> None:
        self.acct, self.pct, self.record = account, pct, record
        self.exchange_id: str | None = None
        self.qty = self.stop = 0.0

    def lift(self) -> None:
        import ccxt  # noqa: PLC0415

        if self.exchange_id is None:
            return
        try:
            call(self.acct.ex.cancel_order, self.exchange_id, self.acct.market, {"trigger": True})
        except ccxt.OrderNotFound:
            pass  # it triggered or expired
        self.record({"type": "unprotect", "exchange_id": self.exchange_id})
        self.exchange_id = None

    def sync(self, qty: float, avg_price: float, tag: str) -> None:
        """Cover the signed ``qty``; nothing when flat."""
        import ccxt  # noqa: PLC0415

        if not qty or avg_price <= 0:
            self.lift()
            return
        stop = avg_price * (1 - self.pct / 100) if qty > 0 else avg_price * (1 + self.pct / 100)
        if self.exchange_id is not None and math.isclose(qty, self.qty, rel_tol=1e-9) \
                and math.isclose(stop, self.stop, rel_tol=1e-9):
            return
        self.lift()
        try:
            res = self.acct.ex.create_order(self.acct.market, "STOP_MARKET", "sell" if qty > 0 else "buy", None, None,
                                            {"stopPrice": stop, "closePosition": True, "clientOrderId": client_id(tag)})
        except (ccxt.InvalidOrder, ccxt.BadRequest, ccxt.InsufficientFunds) as exc:
            self.record({"type": "reject", "id": tag, "reason": f"protective stop: {exc}"})
            log.error("protective stop not placed on the exchange: %s", exc, extra={"alert": True})
            return
        self.exchange_id, self.qty, self.stop = str(res["id"]), qty, stop
        self.record({"type": "protect", "exchange_id": self.exchange_id, "qty": qty, "stop_price": stop})

    def triggered(self) -> bool:
        """Whether our stop has left the book since the last look (it triggered on the exchange)."""
        if self.exchange_id is None:
            return False
        res = call(self.acct.ex.fetch_order, self.exchange_id, self.acct.market, {"trigger": True})
        if res.get("status") == "open":
            return False
        self.exchange_id = None
        return True

