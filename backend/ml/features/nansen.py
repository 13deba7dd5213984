"""Nansen API v1, Token God Mode flow intelligence: a token's net flows over a timeframe by holder segment.

``POST {base}/api/v1/tgm/flow-intelligence`` with the ``apiKey`` header and
``{"chain", "token_address", "timeframe"}``; the answer's ``data[0]`` carries ``smart_trader_net_flow_usd``,
``exchange_net_flow_usd``, ``whale_net_flow_usd`` (and public-figure, top-PnL and fresh-wallet segments, with
average flows and wallet counts). Nansen tracks tokens on chains: an exchange symbol's base asset maps to a
token (``LEVIBOT_NANSEN_TOKENS``, the majors built in). Errors (401/403, 422, 429 with ``retry-after``, 5xx,
timeouts, a body that is not the documented shape) raise ``OnchainUnavailable``: the fetcher serves the last
known value, marked stale, and tries again when due.
"""

from __future__ import annotations

from typing import Any

import httpx

from backend.src.core.errors import TransientError
from backend.src.core.settings import Settings

# base asset -> (chain, token address): wrapped BTC and ETH on Ethereum, wrapped SOL on Solana
MAJORS = {"BTC": ("ethereum", "0x2260fac5e5542a773aa44fbcfedf7c193bc2c599"),
          "ETH": ("ethereum", "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"),
          "SOL": ("solana", "So11111111111111111111111111111111111111112")}
# what the fetcher keeps: our name <- Nansen's field
FIELDS = {"smart_money_net_flow_usd": "smart_trader_net_flow_usd",
          "nansen_exchange_net_flow_usd": "exchange_net_flow_usd", "whale_net_flow_usd": "whale_net_flow_usd"}


class NansenUnavailable(TransientError):
    """Nansen did not answer usefully (the fetcher's ``OnchainUnavailable`` family)."""


class NansenClient:
    def __init__(self, http: httpx.Client, settings: Settings) -> None:
        if settings.nansen_api_key is None:
            raise ValueError("nansen: LEVIBOT_NANSEN_API_KEY is not set")
        self.http = http
        self.url = settings.nansen_base_url.rstrip("/") + "/api/v1/tgm/flow-intelligence"
        self.headers = {"apiKey": settings.nansen_api_key.get_secret_value(), "Accept": "application/json"}
        self.timeframe = settings.nansen_timeframe
        self.timeout_s = settings.nansen_timeout_s
        self.tokens = {**MAJORS, **{a: tuple(w.split(":", 1)) for a, w in settings.nansen_tokens.items()}}

    def token(self, asset: str) -> tuple[str, str] | None:
        found = self.tokens.get(asset.upper())
        return (found[0], found[1]) if found else None

    def flows(self, asset: str) -> dict[str, float] | None:
        """The asset's net flows in USD, or None when no token is known for it (nothing to ask)."""
        token = self.token(asset)
        if token is None:
            return None
        body = {"chain": token[0], "token_address": token[1], "timeframe": self.timeframe}
        try:
            resp = self.http.post(self.url, json=body, headers=self.headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise NansenUnavailable(f"nansen: {type(exc).__name__}: {exc}") from exc
        if resp.status_code == 429:
            raise NansenUnavailable(f"nansen: rate limited (429, retry after {resp.headers.get('retry-after', '?')} s)")
        if resp.status_code != 200:
            raise NansenUnavailable(f"nansen: HTTP {resp.status_code} {resp.text[:120]}")
        return parse(resp)


def parse(resp: httpx.Response) -> dict[str, float]:
    try:
        payload: Any = resp.json()
    except ValueError as exc:
        raise NansenUnavailable("nansen: body is not JSON") from exc
    rows = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise NansenUnavailable("nansen: body has no data list")
    if not rows:
        raise NansenUnavailable("nansen: no flow data for the token")
    out = {}
    for ours, theirs in FIELDS.items():
        value = rows[0].get(theirs) if isinstance(rows[0], dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise NansenUnavailable(f"nansen: {theirs} is not a number: {value!r}")
        out[ours] = float(value)
    return out
