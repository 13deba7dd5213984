"""What the manager says and records when an engine is ``failed`` (no more restarts), and
when the one-shot liquidation of its position (``on_failed: flatten``, see liquidate.py) ends."""

from __future__ import annotations

import logging
from collections.abc import Callable

from backend.src.core.errors import EXIT_OK
from backend.src.engine.liquidate import liquidation_spec
from backend.src.engine.spec import EngineSpec
from backend.src.supervisor.engine_record import EngineRecord
from backend.src.supervisor.state_store import StateStore

log = logging.getLogger(__name__)
LIQUIDATION_ATTEMPTS = 3  # one-shot liquidations of a failed engine's position before giving up


def fmt(position: float | None) -> str:
    return "unknown" if position is None else f"{position:g}"


def failure_notice(store: StateStore, symbol: str, on_failed: str, headline: str,
                   last_error: str) -> tuple[str, dict[str, object]]:
    """Alert with the position and what happens to it; (what the status shows of it, ``on_failed``; the
    ``failed`` event's details), for the watchdog to write with the transition."""
    position = store.position(symbol)
    status = "flattening" if on_failed == "flatten" else ("holding" if position else "flat")
    tail = {"flattening": f"; closing position {fmt(position)} (on_failed: flatten)",
            "holding": f"; position {fmt(position)} HELD with no engine managing it (on_failed: hold)",
            "flat": ""}[status]
    log.error("%s%s", headline, tail, extra={"symbol": symbol, "alert": True, "position": position,
                                              "on_failed": on_failed})
    return status, {"reason": last_error, "position": fmt(position), "on_failed": on_failed}


def report_liquidation(store: StateStore, symbol: str, code: int | None, reason: str, *, final: bool) -> bool:
    """True when the position is closed or this was the last attempt (then alerted)."""
    position = store.position(symbol)
    if code == EXIT_OK and position == 0:
        store.write(symbol, on_failed="flattened")
        store.event("flattened", symbol, reason="on_failed: flatten")
        log.warning("engine %s: the failed engine's position is closed", symbol, extra={"symbol": symbol})
        return True
    if not final:
        log.warning("engine %s: closing the failed engine's position did not succeed (%s); trying again",
                    symbol, reason, extra={"symbol": symbol})
        return False
    store.write(symbol, on_failed="flatten_failed")
    store.event("flatten_failed", symbol, reason=reason, position=fmt(position))
    log.error("engine %s: could not close the failed engine's position %s: %s", symbol, fmt(position), reason,
              extra={"symbol": symbol, "alert": True, "position": position})
    return True


class Liquidations:
    """A failed engine stays down; its position is closed (``on_failed: flatten``: a one-shot liquidation
    process, tried up to LIQUIDATION_ATTEMPTS times) or held and shown. ``spawn`` starts a process for a
    record (the watchdog's)."""

    def __init__(self, store: StateStore, spawn: Callable[[EngineRecord, EngineSpec], None]) -> None:
        self.store, self.spawn = store, spawn

    def notice(self, rec: EngineRecord, headline: str) -> tuple[str, dict[str, object]]:
        return failure_notice(self.store, rec.symbol, rec.spec.config.on_failed, headline, rec.last_error)

    def begin(self, rec: EngineRecord, shutting_down: bool) -> None:
        """After the failed transition: close the position (``on_failed: flatten``) unless shutting down."""
        rec.liquidations = 0
        if rec.spec.config.on_failed == "flatten" and not shutting_down:
            self.start(rec)

    def start(self, rec: EngineRecord) -> None:
        rec.liquidating, rec.liquidations = True, rec.liquidations + 1  # the journal decides what to close
        self.spawn(rec, liquidation_spec(rec.spec))

    def ended(self, rec: EngineRecord, code: int | None, reason: str, shutting_down: bool) -> bool:
        """The liquidation process exited: True when it is over (closed, or the last attempt failed)."""
        rec.liquidating = False
        final = rec.liquidations >= LIQUIDATION_ATTEMPTS or shutting_down
        if not report_liquidation(self.store, rec.symbol, code, reason, final=final):
            self.start(rec)  # e.g. the exchange timed out: try again at once
            return False
        return True
