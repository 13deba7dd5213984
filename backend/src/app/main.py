"""LeviBot API: ``uvicorn backend.src.app.main:app``. Reads Redis only.

Control endpoints send commands to the manager through its Redis stream; they need
``Authorization: Bearer $LEVIBOT_API_TOKEN`` and are disabled (403) when no token is set.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import redis
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from backend.src.app import snapshot
from backend.src.app.metrics import render
from backend.src.core.keys import Keys
from backend.src.core.redis_launcher import discover_url
from backend.src.core.settings import Settings

SymbolPath = Annotated[str, Path(pattern=r"^[A-Z0-9]{2,20}$", description="e.g. BTCUSDT")]
EngineAction = Literal["restart", "stop", "start"]


class ControlRequest(BaseModel):
    """Optional body of a control call."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    wait_s: float = Field(default=2.0, ge=0, le=10, description="how long to wait for the manager's answer")


class CommandResult(BaseModel):
    command_id: str
    status: Literal["pending", "done", "error", "expired"]
    action: str
    symbol: str = ""
    detail: str = ""


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings or Settings()
        app.state.settings = s
        app.state.keys = Keys(s.namespace)
        app.state.status_cache = snapshot.BodyCache(s.api_cache_s)
        app.state.redis = aioredis.Redis.from_url(
            discover_url(s), decode_responses=True, socket_timeout=1.0, socket_connect_timeout=1.0,
            max_connections=64,
        )
        yield
        await app.state.redis.aclose()

    app = FastAPI(title="LeviBot", version="0.1.0", lifespan=lifespan)
    app.add_exception_handler(redis.RedisError, redis_down)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.include_router(router)
    return app


async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming the field. The offending input is not echoed: NaN/Infinity (or ``1e400``, read as
    infinity) cannot be written as JSON, and the default answer failed with a 500 on them."""
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


async def redis_down(_: Request, exc: redis.RedisError) -> JSONResponse:
    return JSONResponse({"detail": f"redis unavailable: {type(exc).__name__}"}, status_code=503)


async def _snapshot(request: Request) -> snapshot.Snapshot:
    return await snapshot.take(request.app.state.redis, request.app.state.keys,
                               request.app.state.settings.heartbeat_timeout_s)


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    token = request.app.state.settings.api_token
    if token is None or not token.get_secret_value():
        raise HTTPException(403, "control endpoints are disabled: set LEVIBOT_API_TOKEN")
    expected = f"Bearer {token.get_secret_value()}"
    if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def _send(request: Request, owner: str, action: Any, symbol: str) -> str:
    from backend.src.core import commands  # noqa: PLC0415 - sync client for the one XADD pipeline
    from backend.src.core.redis_launcher import connect  # noqa: PLC0415

    client = connect(discover_url(request.app.state.settings))
    try:
        return commands.send(client, request.app.state.keys, owner, action, symbol)
    finally:
        client.close()


def _result(command_id: str, res: dict[str, str]) -> CommandResult:
    return CommandResult(command_id=command_id, status=res.get("status", "pending"),  # type: ignore[arg-type]
                         action=res.get("action", ""), symbol=res.get("symbol", ""), detail=res.get("detail", ""))


async def _answer(request: Request, command_id: str, wait_s: float, others: list[str] | None = None) -> JSONResponse:
    """Wait briefly for the manager's answer: 200 done, 409 refused, 202 still pending."""
    r, keys = request.app.state.redis, request.app.state.keys
    deadline = time.monotonic() + wait_s
    res = await r.hgetall(keys.command_result(command_id))
    while res.get("status") == "pending" and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        res = await r.hgetall(keys.command_result(command_id))
    out = _result(command_id, res).model_dump()
    if others:
        out["other_commands"] = others
    code = {"done": 200, "error": 409, "expired": 409}.get(out["status"], 202)
    return JSONResponse(out, status_code=code)


router = APIRouter()


@router.get("/health")
async def health(request: Request) -> dict[str, str]:
    await request.app.state.redis.ping()
    return {"status": "ok", "redis": "ok"}


@router.get("/engines/status")
async def engines_status(request: Request) -> Response:
    """Fleet status in the seed's shape (cached for ``api_cache_s``, default 100 ms)."""

    async def build() -> bytes:
        snap = await _snapshot(request)
        return json.dumps({
            "total": len(snap.engines), **snap.counts(),
            "stalled": sum(1 for e in snap.engines if e["stalled"]),
            "global_stop": snap.global_stop is not None, "engines": snap.engines,
        }, separators=(",", ":")).encode()

    return Response(await request.app.state.status_cache.get(build), media_type="application/json")


@router.get("/engines/{symbol}")
async def engine(symbol: SymbolPath, request: Request) -> dict[str, Any]:
    for e in (await _snapshot(request)).engines:
        if e["symbol"] == symbol:
            return e
    raise HTTPException(404, f"unknown symbol {symbol}")


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    snap = await snapshot.take(request.app.state.redis, request.app.state.keys,
                               request.app.state.settings.heartbeat_timeout_s, with_extras=True)
    return Response(render(snap), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.post("/engines/{symbol}/{action}", dependencies=[Depends(require_token)])
async def control(symbol: SymbolPath, action: EngineAction, request: Request,
                  body: ControlRequest | None = None) -> JSONResponse:
    r, keys = request.app.state.redis, request.app.state.keys
    owner = await r.hget(keys.state(symbol), "owner")
    if not owner:
        raise HTTPException(404, f"unknown symbol {symbol}")
    command_id = await asyncio.to_thread(_send, request, owner, action, symbol)
    return await _answer(request, command_id, (body or ControlRequest()).wait_s)


@router.post("/config/reload", dependencies=[Depends(require_token)])
async def reload(request: Request, body: ControlRequest | None = None) -> JSONResponse:
    managers = await snapshot.live_managers(request.app.state.redis, request.app.state.keys)
    if not managers:
        raise HTTPException(503, "no live manager to reload")
    ids = [await asyncio.to_thread(_send, request, m["owner"], "reload", "") for m in managers]
    return await _answer(request, ids[0], (body or ControlRequest()).wait_s, others=ids[1:])


@router.get("/risk")
async def risk(request: Request) -> dict[str, Any]:
    """Global stop flag, open position slots, and the policy engines enforce."""
    r, keys = request.app.state.redis, request.app.state.keys
    flag = await r.get(keys.global_stop)
    slots = await r.hgetall(keys.risk_slots)
    policy = await r.hget(keys.risk_policy, "json")
    day, _, reason = (flag or "").partition("|")
    return {
        "global_stop": {"active": flag is not None, "day": day or None, "reason": reason or None},
        "open_positions": {s: {"group": v.split("|")[0] or None, "exposure_usd": float(v.split("|")[1])}
                           for s, v in slots.items()},
        "policy": json.loads(policy) if policy else None,
    }


@router.post("/risk/global-stop/clear", dependencies=[Depends(require_token)])
async def clear_global_stop(request: Request) -> dict[str, Any]:
    """Operator clear: entries allowed again; the trigger stays off for the rest of the UTC day."""
    from backend.risk import global_stop  # noqa: PLC0415
    from backend.src.core.redis_launcher import connect  # noqa: PLC0415

    flag = await request.app.state.redis.get(request.app.state.keys.global_stop)
    day = (flag or "").partition("|")[0] or time.strftime("%Y-%m-%d", time.gmtime())

    def run() -> bool:
        client = connect(discover_url(request.app.state.settings))
        try:
            return global_stop.clear(client, request.app.state.keys, by="operator (API)", day=day)
        finally:
            client.close()

    was = await asyncio.to_thread(run)
    return {"cleared": was, "held_off_until_end_of": day}


@router.get("/commands/{command_id}")
async def command(command_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], request: Request) -> CommandResult:
    res = await request.app.state.redis.hgetall(request.app.state.keys.command_result(command_id))
    if not res:
        raise HTTPException(404, f"unknown command {command_id}")
    return _result(command_id, res)


app = create_app()
