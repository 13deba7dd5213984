"""Backtests and parity runs from the dashboard: queued as RQ jobs (``backtest`` queue), served by the
manager's RQ workers; their progress and results are read from the run records (``core/runs.py``)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from backend.ml.research.ui_backtest import BacktestSpec, options
from backend.src.app.control import answer, send
from backend.src.app.security import require_reader, require_token
from backend.src.app.snapshot import SymbolPath
from backend.src.core import fleet
from backend.src.core.redis_launcher import discover_url
from backend.src.core.runs import Kind, enqueue, view

router = APIRouter()
RunId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]


def _enqueue(request: Request, kind: Kind, spec: dict[str, Any], func: str, *args: str) -> str:
    settings = request.app.state.settings
    return enqueue(settings, discover_url(settings), request.app.state.keys, kind, spec, func, *args)


@router.get("/backtests/options", dependencies=[Depends(require_reader)])
async def backtest_options(request: Request) -> dict[str, Any]:
    """What a backtest can be run on: strategies (built in and LeviLang files), candle files, sources."""
    return await asyncio.to_thread(options, request.app.state.settings)


@router.post("/backtests", dependencies=[Depends(require_token)], status_code=202)
async def start_backtest(spec: BacktestSpec, request: Request) -> JSONResponse:
    try:
        spec.check_data(request.app.state.settings)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    run_id = await asyncio.to_thread(_enqueue, request, "backtest", json.loads(spec.model_dump_json()),
                                     "backend.ml.research.ui_backtest.run_backtest", spec.model_dump_json())
    return JSONResponse({"id": run_id, "status": "queued"}, status_code=202)


@router.post("/engines/{symbol}/parity", dependencies=[Depends(require_token)], status_code=202)
async def start_parity(symbol: SymbolPath, request: Request) -> JSONResponse:
    if not await request.app.state.redis.sismember(request.app.state.keys.engines, symbol):
        raise HTTPException(404, f"unknown symbol {symbol}")
    run_id = await asyncio.to_thread(_enqueue, request, "parity", {"symbol": symbol},
                                     "backend.ml.research.parity.run_parity", symbol)
    return JSONResponse({"id": run_id, "status": "queued"}, status_code=202)


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    run_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="a backtest run on candle files")
    symbol: str = Field(pattern=r"^[A-Z0-9]{2,20}$")
    speed: float = Field(default=600.0, gt=0, le=1e6, description="simulated seconds per wall second")
    wait_s: float = Field(default=5.0, ge=0, le=10)


@router.post("/replays", dependencies=[Depends(require_token)])
async def replay(body: ReplayRequest, request: Request) -> JSONResponse:
    """Replay a backtest's file through a real engine (paper) at ``speed``; it then shows like any engine."""
    raw = await request.app.state.redis.hgetall(request.app.state.keys.run(body.run_id))
    if not raw:
        raise HTTPException(404, f"unknown run {body.run_id}")
    spec = json.loads(raw.get("spec") or "{}")
    if raw.get("kind") != "backtest" or spec.get("source") != "file":
        raise HTTPException(422, "run_id: only a backtest on candle files can be replayed")
    if body.symbol not in spec.get("symbols", []):
        raise HTTPException(422, f"symbol: {body.symbol} is not in run {body.run_id}")
    managers = await fleet.live_managers(request.app.state.redis, request.app.state.keys)
    if not managers:
        raise HTTPException(503, "no live manager to run the replay")
    arg = json.dumps({"spec": spec, "symbol": body.symbol, "speed": body.speed})
    command_id = await asyncio.to_thread(send, request, managers[0]["owner"], "replay", "", arg)
    return await answer(request, command_id, body.wait_s)


@router.get("/runs", dependencies=[Depends(require_reader)])
async def runs(request: Request, kind: Literal["backtest", "parity"] | None = None,
               limit: Annotated[int, Query(ge=1, le=50)] = 50) -> dict[str, Any]:
    """Past runs, newest first, without their results."""
    r, keys = request.app.state.redis, request.app.state.keys
    ids = await r.zrevrange(keys.runs, 0, -1)
    pipe = r.pipeline(transaction=False)
    for i in ids:
        pipe.hgetall(keys.run(i))
    out = [view(raw, with_result=False) for raw in await pipe.execute() if raw]
    return {"runs": [x for x in out if kind is None or x["kind"] == kind][:limit]}


@router.get("/runs/{run_id}", dependencies=[Depends(require_reader)])
async def run(run_id: RunId, request: Request) -> dict[str, Any]:
    raw = await request.app.state.redis.hgetall(request.app.state.keys.run(run_id))
    if not raw:
        raise HTTPException(404, f"unknown run {run_id}")
    return view(raw, with_result=True)
