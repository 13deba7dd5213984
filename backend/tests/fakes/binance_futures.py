"""A local stand-in for Binance USDT-M futures (``/fapi``), beside the spot one it extends.

Speaks the wire format ccxt's ``binance`` client uses for a ``BTC/USDT:USDT`` market: leverage
brackets, leverage, margin type, orders (MARKET, LIMIT, ``reduceOnly``), conditional orders on the
algo service (``STOP_MARKET`` with ``closePosition``: it triggers on the last price and closes the
position), open orders, position risk (v3), user trades (commissions), income (funding fees), force
orders (liquidations), funding-rate history and klines. One-way mode, isolated margin once set. Its
refusals carry Binance's codes: -2019 margin is insufficient, -4164 notional below the minimum, -2022
a reduce-only order that would not reduce, -4046 margin type already set, -4028 leverage not valid,
-2021 a stop that would trigger at once, -4120 a conditional type on the plain order endpoint.
"""

from __future__ import annotations

from typing import Any

from backend.tests.fakes.binance_server import BinanceServer, Series

TAKER = 0.0004
MIN_NOTIONAL = 100.0
# The exchange's own tiers (deliberately not the repository's defaults: the engine must use these).
BRACKETS = [(0, 50_000, 50, 0.005), (50_000, 250_000, 20, 0.01), (250_000, 1_000_000, 10, 0.025)]


def brackets() -> list[dict[str, Any]]:
    out, cum, prev = [], 0.0, 0.0
    for i, (floor, cap, lev, mmr) in enumerate(BRACKETS, start=1):
        cum += floor * (mmr - prev) if i > 1 else 0.0
        prev = mmr
        out.append({"bracket": i, "initialLeverage": lev, "notionalCap": cap, "notionalFloor": floor,
                    "maintMarginRatio": mmr, "cum": cum})
    return out


class BinanceFuturesServer(BinanceServer):
    def __init__(self, candles: dict[str, Series], *, timeframe: str = "1m", wallet: float = 10_000.0,
                 funding_history: dict[str, list[tuple[int, float]]] | None = None) -> None:
        self.wallet = wallet
        self.funding_history = funding_history or {}  # symbol -> [(funding time, rate)]: /fapi/v1/fundingRate
        self.leverage: dict[str, int] = {}
        self.margin_type: dict[str, str] = {}
        self.position: dict[str, tuple[float, float]] = {}  # symbol -> (signed qty, entry price)
        self.trades: list[dict[str, Any]] = []
        self.income: list[dict[str, Any]] = []
        self.forced: list[dict[str, Any]] = []
        self.algos: dict[int, dict[str, Any]] = {}
        super().__init__(candles, timeframe=timeframe)

    # ----------------------------------------------------------------- what the market does to us

    def fund(self, symbol: str, rate: float, when: int) -> float:
        """A funding time: longs pay ``qty × mark × rate`` to shorts. Returns what this account got."""
        with self.lock:
            qty, _ = self.position.get(symbol, (0.0, 0.0))
            amount = -qty * self.last_price(symbol) * rate
            self.wallet += amount
            self.income.append({"symbol": symbol, "incomeType": "FUNDING_FEE", "income": f"{amount:.8f}",
                                "asset": "USDT", "info": "FUNDING_FEE", "time": when, "tranId": len(self.income) + 1,
                                "tradeId": ""})
            return amount

    def liquidate(self, symbol: str, price: float, when: int) -> None:
        """The exchange's liquidation engine closes the position at ``price`` (the margin is gone)."""
        with self.lock:
            qty, entry = self.position.get(symbol, (0.0, 0.0))
            side = "SELL" if qty > 0 else "BUY"
            self.wallet += qty * (price - entry) - abs(qty) * price * 0.005
            self.position[symbol] = (0.0, 0.0)
            self.next_id += 1
            self.trades.append({"symbol": symbol, "id": len(self.trades) + 1, "orderId": self.next_id, "side": side,
                                "price": f"{price:.2f}", "qty": f"{abs(qty):.3f}", "realizedPnl": "0",
                                "quoteQty": f"{abs(qty) * price:.8f}", "commission": f"{abs(qty) * price * 0.005:.8f}",
                                "commissionAsset": "USDT", "time": when, "positionSide": "BOTH",
                                "buyer": side == "BUY", "maker": False})
            self.forced.append({"orderId": self.next_id, "symbol": symbol, "status": "FILLED", "clientOrderId":
                                f"autoclose-{self.next_id}", "price": f"{price:.2f}", "avgPrice": f"{price:.2f}",
                                "origQty": f"{abs(qty):.3f}", "executedQty": f"{abs(qty):.3f}",
                                "cumQuote": f"{abs(qty) * price:.2f}", "timeInForce": "IOC", "type": "LIMIT",
                                "reduceOnly": False, "closePosition": False, "side": side, "positionSide": "BOTH",
                                "stopPrice": "0", "workingType": "CONTRACT_PRICE", "origType": "LIMIT",
                                "time": when, "updateTime": when})

    # ----------------------------------------------------------------- routes

    def route(self, method: str, path: str, p: dict[str, str], key: str | None) -> tuple[int, Any]:
        if not path.startswith("/fapi/") or path == "/fapi/v1/exchangeInfo" or path == "/fapi/v1/premiumIndex":
            return super().route(method, path, p, key)
        public = {"/fapi/v1/klines": lambda: self.klines(p), "/fapi/v1/fundingRate": lambda: self.rates(p),
                  "/fapi/v1/time": lambda: {"serverTime": self.now()}, "/fapi/v1/ping": lambda: {}}
        if path in public:
            result = public[path]()
            return (400, result) if isinstance(result, dict) and result.get("code") else (200, result)
        if key != "test-key" or not self.signed(p):
            return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        with_lock = {
            ("GET", "/fapi/v1/leverageBracket"): lambda: (200, [{"symbol": s, "brackets": brackets()}
                                                               for s in self.candles]),
            ("POST", "/fapi/v1/leverage"): lambda: self.set_leverage(p),
            ("POST", "/fapi/v1/marginType"): lambda: self.set_margin(p),
            ("GET", "/fapi/v3/positionRisk"): lambda: (200, self.positions(p)),
            ("POST", "/fapi/v1/order"): lambda: self.place_perp(p),
            ("GET", "/fapi/v1/order"): lambda: self.get_order(p),
            ("DELETE", "/fapi/v1/order"): lambda: self.cancel(p),
            ("GET", "/fapi/v1/openOrders"): lambda: (200, [o for o in self.orders.values()
                                                          if o["status"] in ("NEW", "PARTIALLY_FILLED")]),
            ("GET", "/fapi/v1/userTrades"): lambda: (200, [t for t in self.trades if not p.get("orderId")
                                                          or str(t["orderId"]) == p["orderId"]]),
            ("GET", "/fapi/v1/income"): lambda: (200, [i for i in self.income
                                                      if i["time"] >= int(p.get("startTime", 0))]),
            ("GET", "/fapi/v1/forceOrders"): lambda: (200, list(self.forced)),
            ("POST", "/fapi/v1/algoOrder"): lambda: self.place_algo(p),
            ("GET", "/fapi/v1/algoOrder"): lambda: self.get_algo(p),
            ("DELETE", "/fapi/v1/algoOrder"): lambda: self.cancel_algo(p),
            ("GET", "/fapi/v1/openAlgoOrders"): lambda: (200, [a for a in self.algos.values()
                                                              if a["algoStatus"] == "NEW"]),
        }
        handler = with_lock.get((method, path))
        if handler is None:
            return 404, {"code": -1100, "msg": f"unknown path {path}"}
        with self.lock:
            self.trigger_perp_stops()
            return handler()

    def rates(self, p: dict[str, str]) -> list[dict[str, Any]]:
        start, limit = int(p.get("startTime", 0)), min(int(p.get("limit", 100)), 1000)
        rows = [(t, r) for t, r in self.funding_history.get(p.get("symbol", ""), []) if t >= start][:limit]
        return [{"symbol": p.get("symbol"), "fundingTime": t + 3, "fundingRate": f"{r:.8f}", "markPrice": "0"}
                for t, r in rows]  # Binance stamps funding a few ms after the hour

    def now(self) -> int:
        import time  # noqa: PLC0415

        return int(time.time() * 1000)

    def max_leverage(self) -> int:
        return int(BRACKETS[0][2])

    def set_leverage(self, p: dict[str, str]) -> tuple[int, Any]:
        lev = int(p.get("leverage", 0))
        if not 1 <= lev <= self.max_leverage():
            return 400, {"code": -4028, "msg": f"Leverage {lev} is not valid"}
        self.leverage[p["symbol"]] = lev
        return 200, {"leverage": lev, "maxNotionalValue": str(BRACKETS[0][1]), "symbol": p["symbol"]}

    def set_margin(self, p: dict[str, str]) -> tuple[int, Any]:
        sym, kind = p["symbol"], p.get("marginType", "").upper()
        if self.margin_type.get(sym, "CROSSED") == kind:
            return 400, {"code": -4046, "msg": "No need to change margin type."}
        if self.position.get(sym, (0.0, 0.0))[0]:
            return 400, {"code": -4048, "msg": "Margin type cannot be changed if there exists position."}
        self.margin_type[sym] = kind
        return 200, {"code": 200, "msg": "success"}

    def positions(self, p: dict[str, str]) -> list[dict[str, Any]]:
        out = []
        for sym in self.candles:
            qty, entry = self.position.get(sym, (0.0, 0.0))
            if p.get("symbol") not in (None, sym) or not qty:
                continue
            mark = self.last_price(sym)
            margin = abs(qty) * entry / self.leverage.get(sym, 20)
            out.append({"symbol": sym, "positionSide": "BOTH", "positionAmt": f"{qty:.3f}",
                        "entryPrice": f"{entry:.2f}", "breakEvenPrice": f"{entry:.2f}", "markPrice": f"{mark:.2f}",
                        "unRealizedProfit": f"{qty * (mark - entry):.8f}", "liquidationPrice": "0",
                        "isolatedMargin": f"{margin:.8f}", "notional": f"{qty * mark:.8f}", "marginAsset": "USDT",
                        "isolatedWallet": f"{margin:.8f}", "initialMargin": f"{margin:.8f}", "maintMargin": "0",
                        "positionInitialMargin": f"{margin:.8f}", "openOrderInitialMargin": "0", "adl": 1,
                        "bidNotional": "0", "askNotional": "0", "updateTime": self.now()})
        return out

    def place_perp(self, p: dict[str, str]) -> tuple[int, Any]:
        sym, side, kind = p.get("symbol", ""), p.get("side", ""), p.get("type", "")
        if sym not in self.candles:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        price = self.last_price(sym)
        held = self.position.get(sym, (0.0, 0.0))[0]
        if kind not in ("MARKET", "LIMIT"):
            return 400, {"code": -4120, "msg": "Order type not supported for this endpoint. Please use the Algo "
                                                "Order API endpoints instead."}
        qty = float(p.get("quantity", 0))
        signed = qty if side == "BUY" else -qty
        reduce_only = p.get("reduceOnly") == "true"
        if reduce_only and (not held or (held > 0) == (signed > 0) or abs(signed) > abs(held) + 1e-12):
            return 400, {"code": -2022, "msg": "ReduceOnly Order is rejected."}
        if not reduce_only and qty * price < MIN_NOTIONAL:
            return 400, {"code": -4164, "msg": f"Order's notional must be no smaller than {MIN_NOTIONAL:g} "
                                                "(unless you choose reduce only)."}
        opening = max(0.0, abs(held + signed) - abs(held)) if (held + signed) * held >= 0 else abs(held + signed)
        if opening * price / self.leverage.get(sym, 20) > self.available():
            return 400, {"code": -2019, "msg": "Margin is insufficient."}
        order = self.record_order(p, sym, side, kind, qty, 0.0)
        if kind == "MARKET":
            self.execute(order, qty, price)
        return 200, order

    def available(self) -> float:
        used = sum(abs(q) * e / self.leverage.get(s, 20) for s, (q, e) in self.position.items())
        return self.wallet - used

    def place_algo(self, p: dict[str, str]) -> tuple[int, Any]:
        sym, side, stop = p.get("symbol", ""), p.get("side", ""), float(p.get("triggerPrice", 0))
        if p.get("type") != "STOP_MARKET" or p.get("closePosition") != "true" or not stop:
            return 400, {"code": -1102, "msg": "Mandatory parameter 'triggerPrice' was not sent."}
        price = self.last_price(sym)
        if (side == "SELL" and stop >= price) or (side == "BUY" and stop <= price):
            return 400, {"code": -2021, "msg": "Order would immediately trigger."}
        self.next_id += 1
        now = self.now()
        algo = {"algoId": self.next_id, "clientAlgoId": p.get("clientAlgoId", ""), "algoType": "CONDITIONAL",
                "orderType": "STOP_MARKET", "symbol": sym, "side": side, "positionSide": "BOTH", "timeInForce": "GTC",
                "quantity": "0", "algoStatus": "NEW", "triggerPrice": f"{stop:.2f}", "price": "0",
                "workingType": "CONTRACT_PRICE", "closePosition": True, "priceProtect": False, "reduceOnly": False,
                "createTime": now, "updateTime": now, "triggerTime": 0, "actualOrderId": ""}
        self.algos[self.next_id] = algo
        return 200, algo

    def get_algo(self, p: dict[str, str]) -> tuple[int, Any]:
        algo = self.algos.get(int(p.get("algoId", 0)))
        return (200, algo) if algo else (400, {"code": -2013, "msg": "Order does not exist."})

    def cancel_algo(self, p: dict[str, str]) -> tuple[int, Any]:
        algo = self.algos.get(int(p.get("algoId", 0)))
        if algo is None or algo["algoStatus"] != "NEW":
            return 400, {"code": -2011, "msg": "Unknown order sent."}
        algo["algoStatus"] = "CANCELED"
        return 200, {"algoId": algo["algoId"], "clientAlgoId": algo["clientAlgoId"], "code": "200", "msg": "success"}

    def record_order(self, p: dict[str, str], sym: str, side: str, kind: str, qty: float,
                     price: float) -> dict[str, Any]:
        self.next_id += 1
        now = self.now()
        order = {"orderId": self.next_id, "symbol": sym, "status": "NEW", "clientOrderId": p.get("newClientOrderId",
                 f"x-{self.next_id}"), "price": f"{float(p.get('price', price)):.2f}", "avgPrice": "0.00",
                 "origQty": f"{qty:.3f}", "executedQty": "0.000", "cumQuote": "0.00", "timeInForce": "GTC",
                 "type": kind, "reduceOnly": p.get("reduceOnly") == "true", "closePosition":
                 p.get("closePosition") == "true", "side": side, "positionSide": "BOTH", "stopPrice": "0.00",
                 "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": kind, "updateTime": now,
                 "time": now}
        self.orders[self.next_id] = order
        return order

    def execute(self, order: dict[str, Any], qty: float, price: float) -> None:
        sym = order["symbol"]
        held, entry = self.position.get(sym, (0.0, 0.0))
        signed = qty if order["side"] == "BUY" else -qty
        new = held + signed
        if held and (held > 0) != (signed > 0):  # reduces (or turns): realize on the closed part
            closed = min(abs(signed), abs(held))
            self.wallet += closed * (price - entry) * (1 if held > 0 else -1)
            entry = price if abs(new) > 1e-12 and (new > 0) != (held > 0) else entry
        else:
            entry = (abs(held) * entry + qty * price) / abs(new)
        fee = qty * price * TAKER
        self.wallet -= fee
        self.position[sym] = (round(new, 10) if abs(new) > 1e-12 else 0.0, entry if abs(new) > 1e-12 else 0.0)
        order.update(status="FILLED", executedQty=f"{qty:.3f}", avgPrice=f"{price:.2f}", cumQuote=f"{qty * price:.8f}")
        self.trades.append({"symbol": sym, "id": len(self.trades) + 1, "orderId": order["orderId"],
                            "side": order["side"], "price": f"{price:.2f}", "qty": f"{qty:.3f}",
                            "realizedPnl": "0", "quoteQty": f"{qty * price:.8f}", "commission": f"{fee:.8f}",
                            "commissionAsset": "USDT", "time": self.now(), "positionSide": "BOTH",
                            "buyer": order["side"] == "BUY", "maker": False})

    def trigger_perp_stops(self) -> None:
        """A conditional stop whose trigger the last price reached closes the position at market."""
        for a in list(self.algos.values()):
            if a["algoStatus"] != "NEW":
                continue
            sym, stop = a["symbol"], float(a["triggerPrice"])
            price, held = self.last_price(sym), self.position.get(sym, (0.0, 0.0))[0]
            if (a["side"] == "SELL" and price <= stop) or (a["side"] == "BUY" and price >= stop):
                a.update(algoStatus="FINISHED", triggerTime=self.now())
                if held and (held > 0) == (a["side"] == "SELL"):
                    order = self.record_order({}, sym, a["side"], "MARKET", abs(held), 0.0)
                    self.execute(order, abs(held), price)
                    a["actualOrderId"] = str(order["orderId"])

    def get_order(self, p: dict[str, str]) -> tuple[int, Any]:
        order = self.find(p)
        return (200, order) if order else (400, {"code": -2013, "msg": "Order does not exist."})

    def cancel(self, p: dict[str, str]) -> tuple[int, Any]:
        order = self.orders.get(int(p.get("orderId", 0)))
        if order is None or order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            return 400, {"code": -2011, "msg": "Unknown order sent."}
        order["status"] = "CANCELED"
        return 200, order
