"""Signals from outside: ``POST /signals/{symbol}`` (TradingView alerts, other bots) and ``GET`` their list.

Authenticated per source (``core/signals.py``: HMAC-SHA256 of the body, or TradingView's secret field),
not by the API token: the token guard lets these through and the body is capped at 16 KiB. A signal is
taken only when it is authentic, well-formed, fresh, within its source's rate and never seen before;
then it is appended to the symbol's signal stream, which the symbol's ``webhook`` engine reads and
journals. Every refusal is one line with its status (401, 404, 409, 422, 429) — never a 500, never an
order.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from backend.src.app.security import require_reader
from backend.src.app.snapshot import SymbolPath
from backend.src.core.signals import MAX_BODY, Refused, authenticate, idempotency_key, parse_sources, validate

router = APIRouter()
STREAM_LEN = 10_000


async def take(request: Request, symbol: str, body: bytes, source: str | None, signature: str | None) -> dict[str, Any]:
    """The accepted signal as stored, or ``Refused``."""
    settings, keys, r = request.app.state.settings, request.app.state.keys, request.app.state.redis
    if len(body) > MAX_BODY:
        raise Refused(413, f"body: at most {MAX_BODY} bytes")
    secrets = settings.signal_secrets
    sources = parse_sources(secrets.get_secret_value()) if secrets is not None else {}
    src, data = authenticate(body, sources, source, signature)
    sig = validate(data, symbol)
    now = time.time()
    if abs(now - sig.ts) > settings.signal_max_age_s:
        raise Refused(409, f"ts: {now - sig.ts:+.0f} s from now; at most {settings.signal_max_age_s:g} s "
                           "(LEVIBOT_SIGNAL_MAX_AGE_S)")
    raw = await r.hget(keys.config(symbol), "json")
    if not raw:
        raise Refused(404, f"symbol: {symbol} is not traded here")
    strategy = json.loads(raw).get("strategy", {}).get("name")
    if strategy != "webhook":
        raise Refused(409, f"symbol: {symbol} trades {strategy}, not the webhook strategy")
    minute = int(now // 60)
    async with r.pipeline(transaction=True) as pipe:
        pipe.incr(keys.signal_rate(src.name, minute))
        pipe.expire(keys.signal_rate(src.name, minute), 120)
        count, _ = await pipe.execute()
    if int(count) > settings.signal_rate_per_min:
        raise Refused(429, f"source {src.name}: over {settings.signal_rate_per_min} signals a minute "
                           "(LEVIBOT_SIGNAL_RATE_PER_MIN)")
    sid = idempotency_key(sig, body)
    if not await r.set(keys.signal_seen(src.name, sid), "1", nx=True, ex=int(2 * settings.signal_max_age_s) + 60):
        raise Refused(409, f"id: {sid} from {src.name} was already taken (a replay)")
    expires = sig.expiry()
    entry = {"source": src.name, "id": sid, "target": repr(sig.exposure), "ts": f"{sig.ts:.3f}",
             "expires_at": f"{expires:.3f}" if expires is not None else "", "received_at": f"{now:.3f}",
             "reason": sig.reason}
    entry["stream_id"] = str(await r.xadd(keys.signals(symbol), entry, maxlen=STREAM_LEN, approximate=True))
    return entry


@router.post("/signals/{symbol}", status_code=202, tags=["signals"])
async def post_signal(request: Request, symbol: SymbolPath,
                      x_levibot_source: Annotated[str | None, Header()] = None,
                      x_levibot_signature: Annotated[str | None, Header()] = None) -> JSONResponse:
    """Take a signal for a ``webhook`` engine: 202 with what was stored; 401 wrong secret or signature,
    404 unknown symbol, 409 stale, replayed or not a webhook symbol, 422 malformed, 429 over the rate."""
    body = await request.body()
    try:
        entry = await take(request, symbol, body, x_levibot_source, x_levibot_signature)
    except Refused as exc:
        headers = {"retry-after": str(60 - int(time.time()) % 60)} if exc.status == 429 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)
    return JSONResponse({"accepted": True, "symbol": symbol, **{k: entry[k] for k in ("source", "id", "target",
                                                                                    "expires_at", "stream_id")}},
                        status_code=202)


@router.get("/signals/{symbol}", dependencies=[Depends(require_reader)], tags=["signals"])
async def list_signals(request: Request, symbol: SymbolPath,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """The symbol's latest signals from outside, newest first."""
    rows = await request.app.state.redis.xrevrange(request.app.state.keys.signals(symbol), count=limit)
    return {"symbol": symbol, "signals": [{**fields, "stream_id": sid} for sid, fields in rows]}
