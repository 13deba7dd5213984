"""The model registry and the retrain history, for the models page; promote and rollback.

Reading: the registry's files in the data dir (versions, their metadata, ``promotions.jsonl``) and
the nightly retrain counters in Redis. Acting: promote and rollback are commands to a live manager
through the same durable command stream as every other control action (``core/commands.py``); the
manager changes the registry's ``current`` link and the engines' model watchers follow it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from backend.src.app.control import answer, send
from backend.src.app.security import require_reader, require_token
from backend.src.core import fleet
from backend.src.models.registry import HISTORY, Registry

router = APIRouter()
SHOWN = ("train_date", "data_range", "symbols", "timeframe", "backtest_sharpe", "backtest_win_rate",
         "backtest_max_drawdown", "accuracy", "validation_value", "n_trials", "code_version")


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    version: str = Field(pattern=r"^ensemble_\d{8}_\d{6}x*$", description="e.g. ensemble_20261130_020000")
    wait_s: float = Field(default=5.0, ge=0, le=10)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    wait_s: float = Field(default=5.0, ge=0, le=10)


def registry_view(reg: Registry, limit: int = 50) -> dict[str, Any]:
    cur = reg.current()
    versions = []
    for v in reversed(reg.versions()):
        meta = reg.metadata(v)
        versions.append({"version": v, "production": v == cur, **{k: meta.get(k) for k in SHOWN if k in meta}})
    path = reg.root / HISTORY
    promotions = [json.loads(x) for x in path.read_text().splitlines()[-limit:] if x.strip()] if path.exists() else []
    return {"current": cur, "versions": versions, "promotions": promotions[::-1]}


@router.get("/models", dependencies=[Depends(require_reader)])
async def models(request: Request) -> dict[str, Any]:
    reg = Registry(request.app.state.settings.models_dir)
    out = await asyncio.to_thread(registry_view, reg)
    out["retrain"] = await request.app.state.redis.hgetall(request.app.state.keys.retrain)
    return out


async def _manager(request: Request) -> str:
    managers = await fleet.live_managers(request.app.state.redis, request.app.state.keys)
    if not managers:
        raise HTTPException(503, "no live manager to carry out the command")
    return managers[0]["owner"]


@router.post("/models/promote", dependencies=[Depends(require_token)])
async def promote(body: PromoteRequest, request: Request) -> JSONResponse:
    owner = await _manager(request)
    command_id = await asyncio.to_thread(send, request, owner, "promote", "", body.version)
    return await answer(request, command_id, body.wait_s)


@router.post("/models/rollback", dependencies=[Depends(require_token)])
async def rollback(request: Request, body: RollbackRequest | None = None) -> JSONResponse:
    owner = await _manager(request)
    command_id = await asyncio.to_thread(send, request, owner, "rollback", "")
    return await answer(request, command_id, (body or RollbackRequest()).wait_s)
