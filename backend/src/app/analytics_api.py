"""``GET /history/...``: the analytics store's queries (``analytics/queries.py``) over HTTP.

Ranges are dates (``start``, ``end``, UTC, inclusive; default: the last 30 days) of at most 366
days; a range that ends before it starts or is longer gets a 422 naming the field. Fills are
paginated (``limit`` ≤ 5000, ``offset``). The store unreachable (no analytics process, a server
down): 503.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError

from backend.src.analytics import queries
from backend.src.analytics.store import Store, StoreError, connect
from backend.src.app.security import require_reader
from backend.src.core.settings import Settings

router = APIRouter(prefix="/history", dependencies=[Depends(require_reader)])
MAX_DAYS = 366
FIRST_DAY, LAST_DAY = dt.date(1970, 1, 1), dt.date(2100, 12, 31)  # what candle times (ms since 1970) can hold
SymbolQuery = Annotated[str | None, Query(pattern=r"^[A-Z0-9]{2,20}$", description="e.g. BTCUSDT")]
Day = Annotated[dt.date | None, Query(description="YYYY-MM-DD (UTC)")]
T = TypeVar("T")


class StoreClient:
    """The API's connection to the store, opened on first use and again after a failure (the
    embedded store's port changes when the analytics process restarts)."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.lock = settings, threading.Lock()
        self.store: Store | None = None

    def current(self) -> Store:
        with self.lock:
            self.store = self.store or connect(self.settings)
            return self.store

    def run(self, fn: Callable[[Store], T]) -> T:
        """``fn`` on the store; once more on a fresh connection if it failed (a restarted store)."""
        store = self.current()
        try:
            return fn(store)
        except StoreError:
            with self.lock:
                if self.store is store:
                    self.store = None
            store.close()
        return fn(self.current())


def window(start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    for name, day in (("start", start), ("end", end)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise RequestValidationError([{"loc": ["query", name], "type": "value_error",
                                           "msg": f"{name} must be between {FIRST_DAY} and {LAST_DAY}"}])
    end = end or dt.datetime.now(dt.UTC).date()
    start = start or max(FIRST_DAY, end - dt.timedelta(days=29))
    if end < start:
        raise RequestValidationError([{"loc": ["query", "end"], "msg": "end is before start", "type": "value_error"}])
    if (end - start).days >= MAX_DAYS:
        raise RequestValidationError([{"loc": ["query", "start"], "msg": f"a range is at most {MAX_DAYS} days",
                                       "type": "value_error"}])
    return start, end


async def ask(request: Request, fn: Callable[[Store], T]) -> T:
    client: StoreClient = request.app.state.analytics
    try:
        return await asyncio.to_thread(client.run, fn)
    except StoreError as exc:
        raise HTTPException(503, f"analytics store unavailable: {str(exc).splitlines()[0][:200]}") from None


@router.get("/pnl")
async def pnl(request: Request, symbol: SymbolQuery = None, start: Day = None, end: Day = None,
              by: Literal["day", "week"] = "day") -> dict[str, Any]:
    """PnL per symbol per day or week (quote currency), from the engines' day openings."""
    lo, hi = window(start, end)
    return {"start": lo, "end": hi, "by": by, "rows": await ask(request, lambda s: queries.pnl(s, lo, hi, by, symbol))}


@router.get("/equity")
async def equity(request: Request, symbol: Annotated[str, Query(pattern=r"^[A-Z0-9]{2,20}$")],
                 start: Day = None, end: Day = None,
                 points: Annotated[int, Query(ge=2, le=5000)] = 500) -> dict[str, Any]:
    lo, hi = window(start, end)
    rows = await ask(request, lambda s: queries.equity(s, symbol, queries.ms(lo),
                                                       queries.ms(hi + dt.timedelta(days=1)), points))
    return {"symbol": symbol, "start": lo, "end": hi, "equity": rows}


@router.get("/fills")
async def fills(request: Request, symbol: SymbolQuery = None, start: Day = None, end: Day = None,
                limit: Annotated[int, Query(ge=1, le=5000)] = 500,
                offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict[str, Any]:
    lo, hi = window(start, end)
    out = await ask(request, lambda s: queries.fills(s, symbol, queries.ms(lo), queries.ms(hi + dt.timedelta(days=1)),
                                                     limit, offset))
    return {"start": lo, "end": hi, **out}


@router.get("/crashes")
async def crashes(request: Request, start: Day = None, end: Day = None,
                  by: Literal["day", "week"] = "day") -> dict[str, Any]:
    """Crashes, hangs, failures, recoveries and stalls per engine per day or week (wall time)."""
    lo, hi = window(start, end)
    rows = await ask(request, lambda s: queries.crashes(s, queries.ms(lo), queries.ms(hi + dt.timedelta(days=1)), by))
    return {"start": lo, "end": hi, "by": by, "rows": rows}


@router.get("/calibration")
async def calibration(request: Request, symbol: SymbolQuery = None, start: Day = None, end: Day = None,
                      bins: Annotated[int, Query(ge=2, le=50)] = 10,
                      model: Annotated[str | None, Query(pattern=r"^[\w.-]{1,80}$")] = None) -> dict[str, Any]:
    """Predicted P(up) against the realised share of up moves, per probability bin."""
    lo, hi = window(start, end)
    rows = await ask(request, lambda s: queries.calibration(s, queries.ms(lo), queries.ms(hi + dt.timedelta(days=1)),
                                                            symbol, bins, model))
    return {"start": lo, "end": hi, "bins": rows}
