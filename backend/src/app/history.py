"""What an engine did over time, for the symbol and portfolio pages.

Candles (with the position and equity after each), fills and the portfolio curve come from the
capped Redis streams the engines fill with their heartbeat (``engine/history.py``); events from
the fleet's event stream; the log tail from the engine's own JSONL log in the data dir (the API
runs on the manager's host, beside that directory). Every answer is bounded (``limit``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from backend.src.app.security import require_reader
from backend.src.app.snapshot import SymbolPath
from backend.src.core.portfolio import portfolio_curve

router = APIRouter(dependencies=[Depends(require_reader)])
Limit = Annotated[int, Query(ge=1, le=5000, description="at most this many, newest last")]
LOG_TAIL_BYTES = 256 * 1024


async def _known(request: Request, symbol: str) -> None:
    if not await request.app.state.redis.sismember(request.app.state.keys.engines, symbol):
        raise HTTPException(404, f"unknown symbol {symbol}")


def _num(fields: dict[str, str], names: tuple[str, ...]) -> dict[str, float]:
    return {n: float(fields[n]) for n in names if n in fields}


@router.get("/engines/{symbol}/candles")
async def candles(symbol: SymbolPath, request: Request, limit: Limit = 500) -> dict[str, Any]:
    """Traded candles: ts (open time, ms), o/h/l/c/v, pos and eq after the candle, at (wall time)."""
    await _known(request, symbol)
    rows = await request.app.state.redis.xrevrange(request.app.state.keys.history(symbol), count=limit)
    out = [{"ts": int(f["ts"]), **_num(f, ("o", "h", "l", "c", "v", "pos", "eq", "at"))} for _, f in reversed(rows)]
    return {"symbol": symbol, "candles": out}


@router.get("/engines/{symbol}/fills")
async def fills(symbol: SymbolPath, request: Request, limit: Limit = 500) -> dict[str, Any]:
    await _known(request, symbol)
    rows = await request.app.state.redis.xrevrange(request.app.state.keys.fills(symbol), count=limit)
    out = [{"ts": int(f["ts"]), "side": f.get("side", ""), "order_id": f.get("order_id", ""),
            "reason": f.get("reason", ""), **_num(f, ("qty", "price", "fee", "pos", "at"))} for _, f in reversed(rows)]
    return {"symbol": symbol, "fills": out}


async def _events(request: Request, symbol: str | None, limit: int) -> list[dict[str, str]]:
    rows = await request.app.state.redis.xrevrange(request.app.state.keys.events, count=max(2000, limit))
    out = [{"id": i, **f} for i, f in rows if symbol is None or f.get("symbol") == symbol]
    return out[:limit][::-1]


@router.get("/events")
async def events(request: Request, limit: Annotated[int, Query(ge=1, le=2000)] = 100) -> dict[str, Any]:
    """The fleet's event history (crashed, hung, recovered, failed, stalled, reload, global stop, ...)."""
    return {"events": await _events(request, None, limit)}


@router.get("/engines/{symbol}/events")
async def engine_events(symbol: SymbolPath, request: Request,
                        limit: Annotated[int, Query(ge=1, le=2000)] = 100) -> dict[str, Any]:
    await _known(request, symbol)
    return {"symbol": symbol, "events": await _events(request, symbol, limit)}


def tail(log_dir: Path, symbol: str, lines: int) -> list[dict[str, Any]]:
    """The last ``lines`` records of the engine's newest daily log (read from its last 256 KiB)."""
    files = sorted(log_dir.glob(f"engine-{symbol}-*.jsonl"))
    if not files:
        return []
    with files[-1].open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - LOG_TAIL_BYTES))
        data = fh.read().decode("utf-8", "replace").splitlines()
    if size > LOG_TAIL_BYTES:
        data = data[1:]  # the first line was cut by the seek
    out = []
    for line in data[-lines:]:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = {"msg": line}
        out.append(rec if isinstance(rec, dict) else {"msg": str(rec)})
    return out


@router.get("/engines/{symbol}/logs")
async def logs(symbol: SymbolPath, request: Request,
               lines: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    await _known(request, symbol)
    return {"symbol": symbol, "lines": tail(request.app.state.settings.log_dir, symbol, lines)}


@router.get("/portfolio")
async def portfolio(request: Request, limit: Limit = 2000) -> dict[str, Any]:
    """Portfolio equity (USD) over time and daily PnL; symbols quoted without a USD rate are listed apart."""
    r, keys = request.app.state.redis, request.app.state.keys
    symbols = sorted(await r.smembers(keys.engines))
    pipe = r.pipeline(transaction=False)
    for s in symbols:
        pipe.hget(keys.state(s), "usd_per_quote")
        pipe.xrevrange(keys.history(s), count=limit)
    res = await pipe.execute()
    rates, series = {}, {}
    for i, s in enumerate(symbols):
        rate, rows = res[2 * i], res[2 * i + 1]
        if rate:
            rates[s] = float(rate)
        series[s] = [(float(f["at"]), float(f["eq"])) for _, f in reversed(rows) if "at" in f and "eq" in f]
    out = portfolio_curve(series, rates)
    out["unpriced"] = [s for s in symbols if s not in rates and series[s]]
    return out
