"""Control endpoints: every action goes to the owning manager through its durable Redis command
stream (``core/commands.py``) and needs the API token. The answer waits briefly for the manager:
200 done, 409 refused or expired, 202 still pending (``GET /commands/{id}`` later)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from backend.src.app.security import require_reader, require_token
from backend.src.app.snapshot import SymbolPath
from backend.src.core import fleet
from backend.src.core.commands import wait_result
from backend.src.core.redis_launcher import discover_url

EngineAction = Literal["restart", "stop", "start"]
router = APIRouter()


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


def send(request: Request, owner: str, action: Any, symbol: str, arg: str = "") -> str:
    from backend.src.core import commands  # noqa: PLC0415 - sync client for the one XADD pipeline
    from backend.src.core.redis_url import connect  # noqa: PLC0415

    client = connect(discover_url(request.app.state.settings))
    try:
        return commands.send(client, request.app.state.keys, owner, action, symbol, arg=arg)
    finally:
        client.close()


def _result(command_id: str, res: dict[str, str]) -> CommandResult:
    return CommandResult(command_id=command_id, status=res.get("status", "pending"),  # type: ignore[arg-type]
                         action=res.get("action", ""), symbol=res.get("symbol", ""), detail=res.get("detail", ""))


async def answer(request: Request, command_id: str, wait_s: float, others: list[str] | None = None) -> JSONResponse:
    """Wait briefly for the manager's answer: 200 done, 409 refused, 202 still pending."""
    res = await wait_result(request.app.state.redis, request.app.state.keys, command_id, wait_s)
    out = _result(command_id, res).model_dump()
    if others:
        out["other_commands"] = others
    code = {"done": 200, "error": 409, "expired": 409}.get(out["status"], 202)
    return JSONResponse(out, status_code=code)


@router.post("/engines/{symbol}/{action}", dependencies=[Depends(require_token)])
async def control(symbol: SymbolPath, action: EngineAction, request: Request,
                  body: ControlRequest | None = None) -> JSONResponse:
    r, keys = request.app.state.redis, request.app.state.keys
    owner = await r.hget(keys.state(symbol), "owner")
    if not owner:
        raise HTTPException(404, f"unknown symbol {symbol}")
    command_id = await asyncio.to_thread(send, request, owner, action, symbol)
    return await answer(request, command_id, (body or ControlRequest()).wait_s)


@router.post("/config/reload", dependencies=[Depends(require_token)])
async def reload(request: Request, body: ControlRequest | None = None) -> JSONResponse:
    managers = await fleet.live_managers(request.app.state.redis, request.app.state.keys)
    if not managers:
        raise HTTPException(503, "no live manager to reload")
    ids = [await asyncio.to_thread(send, request, m["owner"], "reload", "") for m in managers]
    return await answer(request, ids[0], (body or ControlRequest()).wait_s, others=ids[1:])


@router.post("/risk/global-stop/clear", dependencies=[Depends(require_token)])
async def clear_global_stop(request: Request) -> dict[str, Any]:
    """Operator clear: entries allowed again; the trigger stays off for the rest of the UTC day."""
    from backend.risk import global_stop  # noqa: PLC0415
    from backend.src.core.redis_url import connect  # noqa: PLC0415

    def run() -> tuple[bool, str]:
        client = connect(discover_url(request.app.state.settings))
        try:
            return global_stop.clear_current(client, request.app.state.keys, by="operator (API)")
        finally:
            client.close()

    was, day = await asyncio.to_thread(run)
    return {"cleared": was, "held_off_until_end_of": day}


@router.get("/commands/{command_id}", dependencies=[Depends(require_reader)])
async def command(command_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], request: Request) -> CommandResult:
    res = await request.app.state.redis.hgetall(request.app.state.keys.command_result(command_id))
    if not res:
        raise HTTPException(404, f"unknown command {command_id}")
    return _result(command_id, res)
