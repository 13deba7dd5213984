"""Signals from outside (``POST /signals/{symbol}``): the sources, the wire format and its checks.

A source is named with its kind and shared secret in ``LEVIBOT_SIGNAL_SECRETS`` (a secret: the API
process alone receives it), ``name=kind:secret`` separated by commas:

- ``hmac``: the sender signs the raw body, ``X-LeviBot-Signature: sha256=<hex HMAC-SHA256(secret, body)>``,
  and names itself in ``X-LeviBot-Source`` (or the body's ``source``);
- ``tradingview``: TradingView's alert webhooks cannot sign, so the alert message is the JSON body with
  the secret in its ``secret`` field (and ``source``). Use HTTPS in front of it.

The body (JSON object, at most ``MAX_BODY`` bytes): ``target`` in [-1, 1] (or ``position``: long, flat,
short, times ``size``), ``ts`` (unix seconds or ms, or ISO 8601 as TradingView's ``{{timenow}}``), ``id``
(the idempotency key; default: the body's hash), optional ``expires_in_s`` or ``expires_at`` (after it the
engine goes flat) and ``reason``. Checks, in order: JSON (422) → source and secret (401) → fields (422)
→ the timestamp within ``signal_max_age_s`` of now (409) → the source's rate (429) → the id not seen
before (409). Only then is it written to the symbol's signal stream, where the engine reads it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_BODY = 16 * 1024
SOURCE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
Kind = Literal["hmac", "tradingview"]


@dataclass(frozen=True)
class Source:
    name: str
    kind: Kind
    secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"Source({self.name!r}, {self.kind!r})"


def parse_sources(text: str) -> dict[str, Source]:
    """``name=kind:secret,...`` (ValueError naming the entry, never echoing a secret)."""
    out: dict[str, Source] = {}
    for i, item in enumerate(filter(None, (p.strip() for p in text.split(","))), start=1):
        name, eq, rest = item.partition("=")
        kind, colon, secret = rest.partition(":")
        name = name.strip()
        if not eq or not colon:
            raise ValueError(f"entry {i}: expected name=kind:secret (kinds: hmac, tradingview)")
        if not SOURCE_RE.match(name):
            raise ValueError(f"entry {i}: source name {name!r}: lowercase letters, digits, - and _ (at most 32)")
        if kind not in ("hmac", "tradingview"):
            raise ValueError(f"entry {i} ({name}): kind {kind!r}: hmac or tradingview")
        if len(secret) < 16:
            raise ValueError(f"entry {i} ({name}): the secret is shorter than 16 characters")
        if name in out:
            raise ValueError(f"entry {i}: source {name!r} named twice")
        out[name] = Source(name, kind, secret)  # type: ignore[arg-type]
    return out


def sign(secret: str, body: bytes) -> str:
    """The ``X-LeviBot-Signature`` header value of a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    return bool(header) and hmac.compare_digest(sign(secret, body).encode(), (header or "").strip().encode())


def parse_ts(v: object) -> float:
    """Unix seconds from seconds, milliseconds or ISO 8601 (ValueError otherwise)."""
    if isinstance(v, bool):
        raise ValueError("ts: a number (unix seconds or ms) or an ISO 8601 time")
    if isinstance(v, int | float):
        t = float(v)
    elif isinstance(v, str) and v.strip():
        s = v.strip()
        try:
            t = float(s)
        except ValueError:
            try:
                when = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("ts: a number (unix seconds or ms) or an ISO 8601 time") from None
            t = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
    else:
        raise ValueError("ts: a number (unix seconds or ms) or an ISO 8601 time")
    if not math.isfinite(t) or t <= 0:
        raise ValueError("ts: a positive time")
    return t / 1000 if t > 1e11 else t


class SignalIn(BaseModel):
    """The body's fields (``secret`` and ``source`` are read before it)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    target: float | None = Field(default=None, ge=-1, le=1)
    position: Literal["long", "flat", "short"] | None = None
    size: float = Field(default=1.0, gt=0, le=1)  # with position: the exposure of long/short
    ts: Any
    id: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
    expires_in_s: float | None = Field(default=None, gt=0, le=30 * 86400)
    expires_at: Any = None
    reason: str = Field(default="", max_length=200)
    source: str | None = None
    secret: str | None = None
    symbol: str | None = None  # TradingView's {{ticker}}: when given, must name the path's symbol

    @field_validator("ts")
    @classmethod
    def _ts(cls, v: object) -> float:
        return parse_ts(v)

    @field_validator("expires_at")
    @classmethod
    def _expires_at(cls, v: object) -> float | None:
        return None if v is None else parse_ts(v)

    @model_validator(mode="after")
    def _one_target(self) -> SignalIn:
        if (self.target is None) == (self.position is None):
            raise ValueError("give target (-1..1) or position (long, flat, short)")
        if self.expires_in_s is not None and self.expires_at is not None:
            raise ValueError("give expires_in_s or expires_at, not both")
        return self

    @property
    def exposure(self) -> float:
        if self.target is not None:
            return float(self.target)
        return {"long": self.size, "flat": 0.0, "short": -self.size}[self.position or "flat"]

    def expiry(self) -> float | None:
        if self.expires_at is not None:
            return float(self.expires_at)
        return float(self.ts) + self.expires_in_s if self.expires_in_s is not None else None


class Refused(Exception):
    """A signal not taken: the HTTP status and one line saying why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def authenticate(body: bytes, sources: dict[str, Source], header_source: str | None,
                 signature: str | None) -> tuple[Source, dict[str, Any]]:
    """The body's source, authenticated, and its JSON (``Refused`` 422 / 401)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(422, "body: not JSON") from None
    if not isinstance(data, dict):
        raise Refused(422, "body: a JSON object")
    name = header_source or data.get("source")
    src = sources.get(name) if isinstance(name, str) else None
    if src is None:
        raise Refused(401, "unknown signal source" if sources else "signals are disabled: set LEVIBOT_SIGNAL_SECRETS")
    if src.kind == "hmac":
        if not signature_ok(src.secret, body, signature):
            raise Refused(401, "X-LeviBot-Signature: missing or wrong")
    else:
        given = data.get("secret")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), src.secret.encode()):
            raise Refused(401, "secret: missing or wrong")
    return src, data


def validate(data: dict[str, Any], symbol: str) -> SignalIn:
    try:
        sig = SignalIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "body"
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise Refused(422, f"{loc}: {msg}") from None
    given = (sig.symbol or "").split(":")[-1].upper().replace("/", "").removesuffix(".P")  # BINANCE:BTCUSDT.P
    if given and given != symbol:
        raise Refused(422, f"symbol: {sig.symbol!r} is not {symbol}")
    return sig


def idempotency_key(sig: SignalIn, body: bytes) -> str:
    return sig.id or hashlib.sha256(body).hexdigest()[:32]
