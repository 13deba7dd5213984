"""A local stand-in for Binance's REST API (spot ``/api/v3`` and USD-M futures ``/fapi/v1``).

Speaks the real wire format, so the real ccxt client runs against it unchanged: exchange
info with filters, klines, server time, premium index (funding), signed order endpoints
(HMAC-SHA256 checked), account, open orders. Error modes on demand: 429 (code -1003 with
Retry-After), 418, 5xx, slow answers (timeouts) and malformed bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_KEY, API_SECRET = "test-key", "test-secret"
ERRORS: dict[str, tuple[int, bytes, dict[str, str]]] = {
    "429": (429, b'{"code": -1003, "msg": "Too many requests; current limit is 1200."}', {"Retry-After": "1"}),
    "418": (418, b'{"code": -1003, "msg": "Way too many requests; IP banned."}', {"Retry-After": "1"}),
    "500": (503, b'{"code": -1001, "msg": "Internal error; unable to process your request."}', {}),
    "malformed": (200, b'[[1700000000000, "1.0", "2.', {}),
}
MS = {"1s": 1_000, "1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000}


def spot_symbol(base: str, quote: str, tick: str = "0.01", step: str = "0.00001", min_notional: str = "5") -> dict:
    return {
        "symbol": base + quote, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
        "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.0", "stepSize": step},
            {"filterType": "NOTIONAL", "minNotional": min_notional, "applyMinToMarket": True,
             "maxNotional": "9000000.0", "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
    }


def perp_symbol(base: str, quote: str) -> dict:
    return {
        "symbol": base + quote, "pair": base + quote, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000, "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
        "marginAsset": quote, "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
        "quotePrecision": 8, "underlyingType": "COIN", "settlePlan": 0, "triggerProtect": "0.0500",
        "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.10", "maxPrice": "4529764", "tickSize": "0.10"},
                    {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                    {"filterType": "MIN_NOTIONAL", "notional": "100"}],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def generated(tf_ms: int, start_price: float = 100.0) -> Callable[[int, int], list[list[float]]]:
    """A live market: deterministic candles for any aligned time range (a zigzag, so SMAs cross)."""

    def rows(start: int, end: int) -> list[list[float]]:
        first = start - start % tf_ms + (tf_ms if start % tf_ms else 0)
        out = []
        for ts in range(first, end + 1, tf_ms):
            k = ts // tf_ms
            phase = k % 20
            o = start_price + (phase if phase < 10 else 20 - phase)
            c = o + (1 if phase < 10 else -1)
            out.append([ts, o, max(o, c) + 0.5, min(o, c) - 0.5, c, 10.0 + phase])
        return out

    return rows


Series = list[list[float]] | Callable[[int, int], list[list[float]]]


class BinanceServer:
    def __init__(self, candles: dict[str, Series], *, timeframe: str = "1m",
                 balances: dict[str, float] | None = None) -> None:
        self.candles = candles  # symbol -> [[ts, o, h, l, c, v], ...]
        self.tf_ms = MS[timeframe]
        self.balances = dict(balances or {"USDT": 10_000.0, "BTC": 0.0, "ETH": 0.0})
        self.plan: deque[str] = deque()  # ok | 429 | 418 | 500 | slow | malformed
        self.down = False  # every request answers 503 while set (an exchange outage)
        self.requests: list[tuple[str, str]] = []
        self.orders: dict[int, dict[str, Any]] = {}
        self.next_id = 1000
        self.partial_limit_fill = 0.5  # a LIMIT order that crosses fills this fraction at once
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    # ----------------------------------------------------------------- plumbing

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _go(self, method: str) -> None:
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = dict(parse_qsl(parts.query)) | dict(parse_qsl(body))
                with server.lock:
                    server.requests.append((method, parts.path))
                    mode = server.plan.popleft() if server.plan else ("500" if server.down else "ok")
                if mode == "slow":
                    time.sleep(3)
                if mode in ERRORS:
                    code, body, headers = ERRORS[mode]
                    return self._raw(code, body, headers)
                code, payload = server.route(method, parts.path, params, self.headers.get("X-MBX-APIKEY"))
                self._send(code, payload)

            def _send(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                self._raw(code, json.dumps(payload).encode(), headers)

            def _raw(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                self._go("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._go("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._go("DELETE")

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ----------------------------------------------------------------- routes

    def route(self, method: str, path: str, p: dict[str, str], key: str | None) -> tuple[int, Any]:
        now = int(time.time() * 1000)
        public = {
            "/api/v3/ping": lambda: {},
            "/api/v3/time": lambda: {"serverTime": now},
            "/api/v3/exchangeInfo": lambda: {"timezone": "UTC", "serverTime": now, "rateLimits": [],
                                             "exchangeFilters": [],
                                             "symbols": [spot_symbol(s[:-4], s[-4:]) for s in self.candles]},
            "/fapi/v1/exchangeInfo": lambda: {"timezone": "UTC", "serverTime": now, "rateLimits": [],
                                              "exchangeFilters": [], "assets": [],
                                              "symbols": [perp_symbol(s[:-4], s[-4:]) for s in self.candles]},
            "/api/v3/klines": lambda: self.klines(p),
            "/fapi/v1/premiumIndex": lambda: self.premium(p, now),
        }
        if path in public:
            result = public[path]()
            return (400, result) if isinstance(result, dict) and result.get("code") else (200, result)
        if key != API_KEY or not self.signed(p):
            return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        self.trigger_stops()
        if path == "/api/v3/account":
            return 200, {"makerCommission": 10, "takerCommission": 10, "canTrade": True, "accountType": "SPOT",
                         "updateTime": now, "permissions": ["SPOT"],
                         "balances": [{"asset": a, "free": f"{v - self.locked(a):.8f}",
                                       "locked": f"{self.locked(a):.8f}"} for a, v in self.balances.items()]}
        if path == "/api/v3/openOrders":
            return 200, [o for o in self.orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")]
        if path == "/api/v3/order" and method == "POST":
            return self.place(p, now)
        if path == "/api/v3/order" and method == "GET":
            order = self.find(p)
            return (200, order) if order else (400, {"code": -2013, "msg": "Order does not exist."})
        if path == "/api/v3/order" and method == "DELETE":
            order = self.orders.get(int(p.get("orderId", 0)))
            if order is None:
                return 400, {"code": -2011, "msg": "Unknown order sent."}
            order["status"] = "CANCELED"
            return 200, order
        return 404, {"code": -1100, "msg": f"unknown path {path}"}

    def resting_stops(self) -> list[dict[str, Any]]:
        return [o for o in self.orders.values() if o["type"] == "STOP_LOSS_LIMIT" and o["status"] == "NEW"]

    def locked(self, asset: str) -> float:
        """Base held by resting stop-loss sells (Binance moves it from free to locked)."""
        return sum(float(o["origQty"]) for o in self.resting_stops() if o["symbol"].startswith(asset))

    def trigger_stops(self) -> None:
        """A stop-loss-limit sell triggers once the last price is at or below its stop: it fills at its limit."""
        for o in self.resting_stops():
            if self.last_price(o["symbol"]) <= float(o["stopPrice"]):
                base, quote = o["symbol"][:-4], o["symbol"][-4:]
                qty, price = float(o["origQty"]), float(o["price"])
                self.balances[base] -= qty
                self.balances[quote] = self.balances.get(quote, 0) + qty * price * 0.999
                o.update(status="FILLED", executedQty=f"{qty:.8f}", cummulativeQuoteQty=f"{qty * price:.8f}")

    def find(self, p: dict[str, str]) -> dict[str, Any] | None:
        if p.get("orderId"):
            return self.orders.get(int(p["orderId"]))
        return next((o for o in self.orders.values() if o["clientOrderId"] == p.get("origClientOrderId")), None)

    def fill_more(self, order_id: int, qty: float) -> None:
        """The market trades through a resting limit order later: fill ``qty`` more of it."""
        with self.lock:
            o = self.orders[order_id]
            done = min(float(o["origQty"]), float(o["executedQty"]) + qty)
            price = float(o["price"])
            sym = o["symbol"]
            base, quote = sym[:-4], sym[-4:]
            delta = done - float(o["executedQty"])
            sign = 1 if o["side"] == "BUY" else -1
            self.balances[base] = self.balances.get(base, 0) + sign * delta
            self.balances[quote] = self.balances.get(quote, 0) - sign * delta * price
            o["executedQty"] = f"{done:.8f}"
            o["cummulativeQuoteQty"] = f"{float(o['cummulativeQuoteQty']) + delta * price:.8f}"
            o["status"] = "FILLED" if done >= float(o["origQty"]) else "PARTIALLY_FILLED"

    def signed(self, p: dict[str, str]) -> bool:
        sig = p.pop("signature", "")
        query = "&".join(f"{k}={v}" for k, v in p.items())
        expected = hmac.new(API_SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(sig, expected)

    def klines(self, p: dict[str, str]) -> Any:
        series = self.candles.get(p.get("symbol", ""))
        if series is None:
            return {"code": -1121, "msg": "Invalid symbol."}
        limit = min(int(p.get("limit", 500)), 1000)
        now = int(time.time() * 1000)
        start, end = int(p.get("startTime", now - limit * self.tf_ms)), min(int(p.get("endTime", now)), now)
        rows = series(start, end) if callable(series) else series
        out = [r for r in rows if start <= r[0] <= end][:limit]
        if "startTime" not in p:
            out = [r for r in rows if r[0] <= end][-limit:]
        return [[int(r[0]), f"{r[1]}", f"{r[2]}", f"{r[3]}", f"{r[4]}", f"{r[5]}", int(r[0]) + self.tf_ms - 1,
                 "0", 10, "0", "0", "0"] for r in out]

    def premium(self, p: dict[str, str], now: int) -> Any:
        sym = p.get("symbol", "")
        if sym not in self.candles:
            return {"code": -1121, "msg": "Invalid symbol."}
        last = self.last_price(sym)
        return {"symbol": sym, "markPrice": f"{last:.2f}", "indexPrice": f"{last:.2f}",
                "estimatedSettlePrice": f"{last:.2f}", "lastFundingRate": "0.00010000", "interestRate": "0.00010000",
                "nextFundingTime": now - now % 28_800_000 + 28_800_000, "time": now}

    def last_price(self, symbol: str) -> float:
        now = int(time.time() * 1000)
        series = self.candles[symbol]
        rows = series(now - 10 * self.tf_ms, now) if callable(series) else [r for r in series if r[0] <= now]
        return float((rows or list(series)[:1])[-1][4])  # type: ignore[arg-type]

    def place(self, p: dict[str, str], now: int) -> tuple[int, Any]:
        sym, side, kind = p.get("symbol", ""), p.get("side", ""), p.get("type", "")
        if sym not in self.candles:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        qty = float(p.get("quantity", 0))
        price = self.last_price(sym)
        limit = float(p.get("price", 0)) if kind == "LIMIT" else price
        if qty * (limit or price) < 5:
            return 400, {"code": -1013, "msg": "Filter failure: NOTIONAL"}
        base, quote = sym[:-4], sym[-4:]
        if kind == "STOP_LOSS_LIMIT":
            return self.place_stop(p, sym, qty, now)
        crosses = kind == "MARKET" or (side == "BUY" and limit >= price) or (side == "SELL" and limit <= price)
        filled = qty if kind == "MARKET" else (qty * self.partial_limit_fill if crosses else 0.0)
        if side == "BUY" and self.balances.get(quote, 0) < qty * (limit or price):
            return 400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}
        if side == "SELL" and self.balances.get(base, 0) - self.locked(base) < qty - 1e-12:
            return 400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}
        fee = filled * price * 0.001
        if filled:
            sign = 1 if side == "BUY" else -1
            self.balances[base] = self.balances.get(base, 0) + sign * filled
            self.balances[quote] = self.balances.get(quote, 0) - sign * filled * price - fee
        self.next_id += 1
        status = "FILLED" if filled >= qty else ("PARTIALLY_FILLED" if filled else "NEW")
        order = {
            "symbol": sym, "orderId": self.next_id, "orderListId": -1, "clientOrderId": p.get("newClientOrderId", ""),
            "transactTime": now, "price": f"{limit if kind == 'LIMIT' else 0:.8f}", "origQty": f"{qty:.8f}",
            "executedQty": f"{filled:.8f}", "cummulativeQuoteQty": f"{filled * price:.8f}", "status": status,
            "timeInForce": p.get("timeInForce", "GTC"), "type": kind, "side": side, "workingTime": now,
            "selfTradePreventionMode": "NONE",
            "fills": [{"price": f"{price:.8f}", "qty": f"{filled:.8f}", "commission": f"{fee:.8f}",
                       "commissionAsset": quote, "tradeId": self.next_id}] if filled else [],
        }
        self.orders[self.next_id] = order
        return 200, order

    def place_stop(self, p: dict[str, str], sym: str, qty: float, now: int) -> tuple[int, Any]:
        if p.get("side") != "SELL" or not p.get("stopPrice") or not p.get("price"):
            return 400, {"code": -1102, "msg": "Mandatory parameter 'stopPrice' was not sent."}
        if float(p["stopPrice"]) >= self.last_price(sym):
            return 400, {"code": -2010, "msg": "Stop price would trigger immediately."}
        base = sym[:-4]
        if self.balances.get(base, 0) - self.locked(base) < qty - 1e-12:
            return 400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}
        self.next_id += 1
        order = {
            "symbol": sym, "orderId": self.next_id, "orderListId": -1, "clientOrderId": p.get("newClientOrderId", ""),
            "transactTime": now, "price": f"{float(p['price']):.8f}", "origQty": f"{qty:.8f}",
            "executedQty": "0.00000000", "cummulativeQuoteQty": "0.00000000", "status": "NEW",
            "timeInForce": p.get("timeInForce", "GTC"), "type": "STOP_LOSS_LIMIT", "side": "SELL",
            "stopPrice": f"{float(p['stopPrice']):.8f}", "workingTime": -1, "selfTradePreventionMode": "NONE",
            "fills": [],
        }
        self.orders[self.next_id] = order
        return 200, order
