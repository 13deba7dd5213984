"""What a starting manager does with what an earlier run left behind.

A recorded pid is only a hint: a process is treated as a previous engine only if it is
alive, its cmdline names ``engine-<SYMBOL>`` and its start time matches the record.
Anything else holding that pid is an unrelated process and is never touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import redis

from backend.src.core.errors import UsageError
from backend.src.core.keys import Keys
from backend.src.core.lease import read_lease
from backend.src.core.runtime import Runtime
from backend.src.core.states import EngineState
from backend.src.supervisor.state_store import StateStore, read_registry

log = logging.getLogger(__name__)

ORPHAN_GRACE_S = 3.0  # orphaned engines stop themselves within 2 s


@dataclass(frozen=True)
class Previous:
    status: EngineState | None
    restarts: int


def refuse_foreign_leases(r: redis.Redis, keys: Keys, owner: str, symbols: list[str]) -> None:
    for sym in symbols:
        lease = read_lease(r, keys, sym)
        if lease and lease.owner != owner:
            raise UsageError(
                f"{sym} is already leased by a live engine elsewhere (manager {lease.owner}, pid {lease.pid})"
            )


def _candidates(state: dict[str, str], mirror: dict[str, object]) -> set[tuple[int, float]]:
    out = set()
    for rec in (state, mirror):
        pid, started = rec.get("pid"), rec.get("started_at")
        if pid and started:  # without a start time a pid proves nothing
            out.add((int(str(pid)), float(str(started))))
    return out


def reconcile_previous(
    store: StateStore, registry_path: Path, symbols: list[str], rt: Runtime
) -> dict[str, Previous]:
    states = store.read_all(symbols)
    mirror = read_registry(registry_path)
    out: dict[str, Previous] = {}
    for sym in symbols:
        st = states.get(sym) or {}
        for pid, started in _candidates(st, mirror.get(sym) or {}):
            if rt.is_engine(pid, sym, started):
                log.warning("engine %s pid %s from a previous manager still alive; stopping it", sym, pid,
                            extra={"symbol": sym})
                _wait_gone(pid, sym, started, rt)
            else:
                log.info("recorded pid %s of %s is not a live engine of it; left alone", pid, sym,
                         extra={"symbol": sym})
        status = st.get("status")
        known = {v.value for v in EngineState}
        out[sym] = Previous(EngineState(status) if status in known else None, int(st.get("restarts") or 0))
    return out


def _wait_gone(pid: int, sym: str, started: float, rt: Runtime) -> None:
    deadline = rt.monotonic() + ORPHAN_GRACE_S
    while rt.is_engine(pid, sym, started) and rt.monotonic() < deadline:
        rt.sleep(0.05)
    if rt.is_engine(pid, sym, started):
        rt.kill_verified(pid, sym, started)
        while rt.is_engine(pid, sym, started):
            rt.sleep(0.02)
