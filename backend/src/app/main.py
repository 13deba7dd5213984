"""LeviBot API and dashboard: ``uvicorn backend.src.app.main:app``.

Reads Redis (and, for the model registry and log tails, the data dir of the manager it runs
beside); writes only the managers' command streams and the run queue. Control needs
``Authorization: Bearer $LEVIBOT_API_TOKEN`` (``security.py``). The dashboard is static files
served from ``static/`` at ``/``: same origin, no build step, no CORS.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from backend.src.app import analytics_api, control, history, models_view, runs_api, signals_api, snapshot
from backend.src.app.live import FleetFeed
from backend.src.app.metrics import render
from backend.src.app.security import BodyGuard, SecurityHeaders, require_reader
from backend.src.app.snapshot import SymbolPath
from backend.src.core import fleet
from backend.src.core.keys import Keys
from backend.src.core.redis_launcher import discover_url
from backend.src.core.redis_url import connect_async
from backend.src.core.settings import Settings

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings or Settings()
        app.state.settings = s
        app.state.keys = Keys(s.namespace)
        app.state.status_cache = snapshot.BodyCache(s.api_cache_s)
        app.state.redis = connect_async(
            # 3 s: a loaded small machine (50 engines on 2 cores) answers slowly; a dead Redis is still a 503
            discover_url(s), timeout=3.0, connect_timeout=1.0, max_connections=64,
        )
        app.state.feed = FleetFeed(lambda: status_body(app))
        app.state.analytics = analytics_api.StoreClient(s)
        yield
        await app.state.feed.close()
        await app.state.redis.aclose()

    app = FastAPI(title="LeviBot", version="0.1.0", lifespan=lifespan)
    app.add_middleware(BodyGuard)  # inside SecurityHeaders: its refusals carry the headers too
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(redis.RedisError, redis_down)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    for r in (router, runs_api.router, control.router, history.router, models_view.router,  # parity before {action}
              analytics_api.router, signals_api.router):
        app.include_router(r)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming the field. The offending input is not echoed: NaN/Infinity (or ``1e400``, read as
    infinity) cannot be written as JSON, and the default answer failed with a 500 on them."""
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


async def redis_down(_: Request, exc: redis.RedisError) -> JSONResponse:
    return JSONResponse({"detail": f"redis unavailable: {type(exc).__name__}"}, status_code=503)


async def _snapshot(request: Request) -> fleet.Snapshot:
    return await fleet.take(request.app.state.redis, request.app.state.keys,
                               request.app.state.settings.heartbeat_timeout_s)


async def status_body(app: FastAPI) -> bytes:
    """The fleet (cached for ``api_cache_s``, default 100 ms): what ``/engines/status`` and the live feed send."""

    async def build() -> bytes:
        snap = await fleet.take(app.state.redis, app.state.keys, app.state.settings.heartbeat_timeout_s)
        return json.dumps({
            "total": len(snap.engines), **snap.counts(),
            "stalled": sum(1 for e in snap.engines if e["stalled"]),
            "global_stop": snap.global_stop is not None, "global_stop_reason": snap.global_stop,
            "totals": snap.totals(), "taken_at": round(snap.taken_at, 3), "engines": snap.engines,
        }, separators=(",", ":")).encode()

    body: bytes = await app.state.status_cache.get(build)
    return body


router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")


@router.get("/health")
async def health(request: Request) -> dict[str, str]:
    await request.app.state.redis.ping()
    return {"status": "ok", "redis": "ok"}


@router.get("/engines/status", dependencies=[Depends(require_reader)])
async def engines_status(request: Request) -> Response:
    """Fleet status in the seed's shape, plus totals in USD."""
    return Response(await status_body(request.app), media_type="application/json")


@router.get("/stream/fleet", dependencies=[Depends(require_reader)], include_in_schema=False)  # endless: not fuzzable
async def stream_fleet(request: Request) -> StreamingResponse:
    """Server-Sent Events: ``event: fleet`` with the status body whenever it changes (read every 0.5 s)."""
    return StreamingResponse(request.app.state.feed.stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/engines/{symbol}", dependencies=[Depends(require_reader)])
async def engine(symbol: SymbolPath, request: Request) -> dict[str, Any]:
    for e in (await _snapshot(request)).engines:
        if e["symbol"] == symbol:
            return e
    raise HTTPException(404, f"unknown symbol {symbol}")


@router.get("/metrics", dependencies=[Depends(require_reader)])
async def metrics(request: Request) -> Response:
    snap = await fleet.take(request.app.state.redis, request.app.state.keys,
                               request.app.state.settings.heartbeat_timeout_s, with_extras=True)
    return Response(render(snap), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/risk", dependencies=[Depends(require_reader)])
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


app = create_app()
