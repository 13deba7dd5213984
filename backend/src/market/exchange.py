"""ccxt plumbing: build a client, map symbols, retry what is transient.

Imported lazily (ccxt is heavy): only processes that talk to an exchange pay for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from backend.src.core.errors import TransientError, UsageError
from backend.src.core.retry import retrying

log = logging.getLogger(__name__)
T = TypeVar("T")


class ExchangeUnavailable(TransientError):
    """The exchange did not answer usefully after the retries (network, 429/418, 5xx, garbage)."""


def make_exchange(
    exchange_id: str, *, base_url: str | None = None, api_key: str | None = None, secret: str | None = None,
    timeout_s: float = 10.0, rate_limit: bool = True,
) -> Any:
    """A ccxt client with its rate limiter on. ``base_url`` points every API at another host."""
    import ccxt  # noqa: PLC0415 - heavy; only exchange users import it

    if exchange_id not in ccxt.exchanges:
        raise UsageError(f"--source: unknown exchange {exchange_id!r} (any ccxt id, e.g. binance, kraken, okx)")
    config: dict[str, Any] = {
        "enableRateLimit": rate_limit,
        "timeout": int(timeout_s * 1000),
        "options": {"fetchCurrencies": False, "fetchMargins": False,
                    "fetchMarkets": {"types": ["spot", "linear"]}},
    }
    if api_key and secret:
        config.update(apiKey=api_key, secret=secret)
    ex = getattr(ccxt, exchange_id)(config)
    if base_url:
        _rebase(ex.urls, base_url.rstrip("/"))
    return ex


def _rebase(urls: dict[str, Any], base: str) -> None:
    api = urls.get("api")
    if isinstance(api, str):
        urls["api"] = base + "/" + api.split("/", 3)[3] if api.count("/") >= 3 else base
        return
    if not isinstance(api, dict):
        return
    for key, value in api.items():
        if isinstance(value, str):
            rest = value.split("/", 3)
            api[key] = base + ("/" + rest[3] if len(rest) > 3 else "")


def resolve_symbol(ex: Any, symbol: str, *, kind: str = "spot") -> str:
    """``BTCUSDT`` or ``BTC/USDT`` -> the exchange's unified symbol (markets must be loaded)."""
    if symbol in ex.markets and ex.markets[symbol].get("type") == kind:
        return symbol
    wanted = symbol.replace("/", "").upper()
    for unified, market in ex.markets.items():
        if market.get("type") == kind and (market.get("id", "").upper() == wanted
                                           or unified.replace("/", "").split(":")[0] == wanted):
            return str(unified)
    raise UsageError(f"--symbols: {symbol} is not a {kind} market on {ex.id}")


def call(fn: Callable[..., T], *args: Any, attempts: int = 5, base_s: float = 0.5, cap_s: float = 30.0,
         sleep: Callable[[float], Any] = time.sleep, **kwargs: Any) -> T:
    """Call a ccxt method; retry network errors, 429/418 and 5xx with backoff (at least 1 s after
    a 429/418). An exchange's own refusal (bad symbol, insufficient funds, invalid order) is
    raised at once: retrying cannot help, and an order is never blindly placed again."""
    import ccxt  # noqa: PLC0415

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, ccxt.OperationFailed | ExchangeUnavailable) and not isinstance(exc, ccxt.ExchangeError)

    def min_wait(exc: BaseException) -> float:
        return 1.0 if isinstance(exc, ccxt.DDoSProtection) else 0.0

    policy = retrying(retry_if=retryable, attempts=attempts, base_s=base_s, cap_s=cap_s, sleep=sleep,
                      min_wait=min_wait, label=f"exchange {getattr(fn, '__name__', 'call')}")
    try:
        return policy(fn, *args, **kwargs)
    except (ccxt.OperationFailed, ExchangeUnavailable) as exc:  # network, 429/418, timeouts, 5xx, garbage
        if isinstance(exc, ccxt.ExchangeError):
            raise
        raise ExchangeUnavailable(f"{getattr(fn, '__name__', 'call')}: {type(exc).__name__}: "
                                  f"{str(exc)[:200]}") from exc


def check_ohlcv(rows: Any) -> list[list[float]]:
    """Defensive parse: a malformed body must not become an empty 'no candles' answer silently."""
    if not isinstance(rows, list) or any(not isinstance(r, list | tuple) or len(r) < 6 for r in rows):
        raise ExchangeUnavailable(f"malformed OHLCV answer: {str(rows)[:100]}")
    try:
        return [[float(x) for x in r[:6]] for r in rows]
    except (TypeError, ValueError) as exc:
        raise ExchangeUnavailable(f"malformed OHLCV values: {str(rows)[:100]}") from exc


def fetch_candles(ex: Any, market: str, timeframe: str, *, since: int | None = None, limit: int = 1000,
                  sleep: Callable[[float], Any] = time.sleep) -> list[list[float]]:
    """OHLCV rows ``[ts, o, h, l, c, v]``, validated, with retries."""

    def once() -> list[list[float]]:
        return check_ohlcv(ex.fetch_ohlcv(market, timeframe, since=since, limit=limit))

    return call(once, sleep=sleep)


def fetch_funding_rate(ex: Any, symbol: str) -> dict[str, float | str | None]:
    """Current funding rate of the symbol's USD-margined perpetual (``BTCUSDT`` -> ``BTC/USDT:USDT``)."""
    market = resolve_symbol(ex, symbol, kind="swap")
    fr = call(ex.fetch_funding_rate, market)
    rate = fr.get("fundingRate")
    if rate is None:
        raise ExchangeUnavailable(f"funding rate of {market}: the exchange answered without one")
    return {"symbol": symbol, "market": market, "rate": float(rate),
            "mark_price": float(fr["markPrice"]) if fr.get("markPrice") is not None else None,
            "next_funding_ms": fr.get("fundingTimestamp") or fr.get("nextFundingTimestamp"),
            "timestamp_ms": fr.get("timestamp")}
