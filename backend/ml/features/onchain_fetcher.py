"""On-chain metrics: Dune (execute a query, poll its status, fetch its results), Nansen (smart-money,
exchange and whale net flows per token: ``nansen.py``) and the funding rate through ccxt, cached in
Redis for 5 minutes, each source on its own clock.

When an API is down the last known value is served with its age and ``stale=True``;
engines decide how much to trust it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from backend.ml.features.nansen import FIELDS as NANSEN_FIELDS
from backend.ml.features.nansen import NansenClient
from backend.ml.features.news import base_asset
from backend.src.core.errors import LeviBotError, TransientError
from backend.src.core.keys import Keys
from backend.src.core.settings import Settings

log = logging.getLogger(__name__)
DEFAULT_SQL = (Path(__file__).with_name("dune_exchange_flows.sql")).read_text()
DUNE_TERMINAL_FAILURES = ("QUERY_STATE_FAILED", "QUERY_STATE_CANCELED", "QUERY_STATE_EXPIRED")
SOURCES = ("dune", "nansen", "funding")
METRICS = ("active_addresses_24h", "exchange_inflow_usd", "exchange_outflow_usd", "whale_transactions_count")


class OnchainUnavailable(TransientError):
    """The API did not answer usefully; serve the last known value and try again later."""


@dataclass(frozen=True)
class OnchainMetrics:
    symbol: str
    active_addresses_24h: int | None = None
    exchange_inflow_usd: float | None = None
    exchange_outflow_usd: float | None = None
    whale_transactions_count: int | None = None
    funding_rate: float | None = None
    smart_money_net_flow_usd: float | None = None  # Nansen: smart traders' net flow (+: accumulating)
    nansen_exchange_net_flow_usd: float | None = None  # Nansen: into exchanges, net (+: deposits, sell pressure)
    whale_net_flow_usd: float | None = None
    fetched_at: float = 0.0  # unix seconds of the newest successful fetch
    age_s: float = 0.0
    stale: bool = False
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def net_exchange_flow_usd(self) -> float | None:
        if self.exchange_inflow_usd is None or self.exchange_outflow_usd is None:
            return None
        return self.exchange_inflow_usd - self.exchange_outflow_usd


def typed_row(row: dict[str, Any]) -> dict[str, int | float | None]:
    """The four Dune metrics from a result row, coerced to their types (absent → None)."""
    out: dict[str, int | float | None] = {}
    for name in METRICS:
        value = row.get(name)
        try:
            out[name] = None if value is None else (int(float(value)) if name.endswith(("_24h", "_count"))
                                                    else float(value))
        except (TypeError, ValueError):
            raise OnchainUnavailable(f"dune: column {name} is not a number: {value!r}") from None
    return out


class DuneClient:
    """Dune API v1: execute a saved query (``dune_query_id``) or, without one, the project's SQL."""

    def __init__(self, http: httpx.Client, settings: Settings, sleep: Callable[[float], None] = time.sleep) -> None:
        if settings.dune_api_key is None:
            raise ValueError("dune: LEVIBOT_DUNE_API_KEY is not set")
        self.http = http
        self.base = settings.dune_base_url.rstrip("/") + "/api/v1"
        self.headers = {"X-Dune-Api-Key": settings.dune_api_key.get_secret_value()}
        self.query_id = settings.dune_query_id
        self.poll_s = settings.dune_poll_s
        self.max_wait_s = settings.dune_max_wait_s
        self.sleep = sleep

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            resp = self.http.request(method, self.base + path, json=body, headers=self.headers, timeout=30.0)
        except httpx.HTTPError as exc:
            raise OnchainUnavailable(f"dune {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise OnchainUnavailable(f"dune {path}: HTTP {resp.status_code} {resp.text[:120]}")
        try:
            data = resp.json()
        except ValueError as exc:
            raise OnchainUnavailable(f"dune {path}: body is not JSON") from exc
        if not isinstance(data, dict):
            raise OnchainUnavailable(f"dune {path}: body is not an object")
        return data

    def execute(self, params: dict[str, Any]) -> str:
        if self.query_id is not None:
            data = self._call("POST", f"/query/{self.query_id}/execute",
                              {"query_parameters": params, "performance": "medium"})
        else:
            sql = DEFAULT_SQL
            for k, v in params.items():
                sql = sql.replace("{{" + k + "}}", str(v))
            data = self._call("POST", "/sql/execute", {"sql": sql, "performance": "medium"})
        eid = data.get("execution_id")
        if not isinstance(eid, str) or not eid:
            raise OnchainUnavailable("dune execute: no execution_id in the answer")
        return eid

    def wait(self, eid: str) -> None:
        deadline = time.monotonic() + self.max_wait_s
        while True:
            state = str(self._call("GET", f"/execution/{eid}/status").get("state"))
            if state == "QUERY_STATE_COMPLETED":
                return
            if state in DUNE_TERMINAL_FAILURES:
                raise OnchainUnavailable(f"dune execution {eid}: {state}")
            if time.monotonic() > deadline:
                raise OnchainUnavailable(f"dune execution {eid}: still {state} after {self.max_wait_s:.0f}s")
            self.sleep(self.poll_s)

    def rows(self, eid: str) -> list[dict[str, Any]]:
        data = self._call("GET", f"/execution/{eid}/results")
        rows = (data.get("result") or {}).get("rows")
        if not isinstance(rows, list):
            raise OnchainUnavailable(f"dune execution {eid}: results without result.rows")
        return rows

    def run(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        eid = self.execute(params)
        self.wait(eid)
        return self.rows(eid)


class OnchainFetcher:
    """``get(symbol)``: cached metrics (5 min), refreshed from the APIs when due; never raises."""

    def __init__(self, settings: Settings, r: redis.Redis, *, http: httpx.Client | None = None,
                 funding: Callable[[str], float] | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.r = r
        self.keys = Keys(settings.namespace)
        self.clock = clock
        http = http or httpx.Client()
        self.dune = DuneClient(http, settings, sleep) if settings.dune_api_key else None
        self.nansen = NansenClient(http, settings) if settings.nansen_api_key else None
        self.funding = funding

    def cached(self, symbol: str) -> dict[str, Any]:
        raw = self.r.hgetall(self.keys.onchain(symbol))
        return {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}

    def get(self, symbol: str, *, force: bool = False) -> OnchainMetrics:
        now = self.clock()
        known = self.cached(symbol)
        due = [src for src in SOURCES
               if force or now - float(known.get(f"{src}_at") or 0) >= self.settings.onchain_cache_ttl_s]
        errors = []
        for src in due:
            try:
                values = self._fetch(src, symbol)
            except (LeviBotError, ValueError) as exc:  # transient or a config error: keep the last value
                errors.append(f"{src}: {exc}")
                log.warning("onchain %s %s: %s; serving the last known value", symbol, src, exc)
                continue
            if values is None:
                continue  # not configured
            known.update(values)
            known[f"{src}_at"] = now
            self.r.hset(self.keys.onchain(symbol), mapping={**{k: json.dumps(v) for k, v in values.items()},
                                                            f"{src}_at": json.dumps(now)})
        return self._metrics(symbol, known, now, tuple(errors))

    def _fetch(self, src: str, symbol: str) -> dict[str, Any] | None:
        if src == "nansen":
            return self.nansen.flows(base_asset(symbol)) if self.nansen is not None else None
        return self._fetch_dune(symbol) if src == "dune" else self._fetch_funding(symbol)

    def _fetch_dune(self, symbol: str) -> dict[str, Any] | None:
        if self.dune is None:
            return None
        rows = self.dune.run({"asset": base_asset(symbol)})
        if not rows:
            raise OnchainUnavailable("dune: the query returned no rows")
        return typed_row(rows[0])

    def _fetch_funding(self, symbol: str) -> dict[str, Any] | None:
        if self.funding is None:
            return None
        return {"funding_rate": float(self.funding(symbol))}

    def _metrics(self, symbol: str, known: dict[str, Any], now: float, errors: tuple[str, ...]) -> OnchainMetrics:
        stamps = [float(known[f"{src}_at"]) for src in SOURCES if known.get(f"{src}_at")]
        fetched = min(stamps) if stamps else 0.0
        age = now - fetched if stamps else float("inf")
        values = {k: known.get(k) for k in (*METRICS, "funding_rate", *NANSEN_FIELDS)}
        return OnchainMetrics(symbol=symbol, **values, fetched_at=fetched, age_s=age,
                              stale=bool(errors) or age > self.settings.onchain_cache_ttl_s * 2, errors=errors)

    @staticmethod
    def as_dict(m: OnchainMetrics) -> dict[str, Any]:
        d = asdict(m)
        d["errors"] = list(m.errors)
        return d


def ccxt_funding(settings: Settings) -> Callable[[str], float] | None:
    """Funding-rate lookup through ccxt (``LEVIBOT_FUNDING_EXCHANGE``), or None when disabled."""
    if not settings.funding_exchange:
        return None
    from backend.src.market.exchange import call, fetch_funding_rate, make_exchange  # noqa: PLC0415 - ccxt is slow to import

    ex = make_exchange(settings.funding_exchange, base_url=settings.exchange_base_url,
                       timeout_s=settings.exchange_timeout_s)

    def get(symbol: str) -> float:
        if not ex.markets:
            call(ex.load_markets)
        return float(fetch_funding_rate(ex, symbol)["rate"] or 0.0)

    return get
