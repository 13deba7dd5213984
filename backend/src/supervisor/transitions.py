"""Every engine state change the watchdog makes, and what it announces.

A transition is checked by the state machine (``core/states.py``), logged, written to Redis with the
event it announces (``ANNOUNCED``) in one transaction — a reader that sees ``failed`` also sees the
``failed`` event and what happens to the position — and marks the registry file for a rewrite.
"""

from __future__ import annotations

import logging

from backend.src.core.runtime import Runtime
from backend.src.core.states import EngineState, check_transition
from backend.src.supervisor.engine_record import EngineRecord
from backend.src.supervisor.state_store import StateStore

S = EngineState
log = logging.getLogger(__name__)
# The event a transition announces when its caller gives the details (the event stream, alerts, analytics).
ANNOUNCED = {S.CRASHED: "crashed", S.STOPPED: "stopped", S.RUNNING: "recovered", S.FAILED: "failed"}


class Transitions:
    def __init__(self, store: StateStore, runtime: Runtime, owner: str) -> None:
        self.store, self.rt, self.owner = store, runtime, owner
        self.mirror_due = False  # a state changed: rewrite the registry file on the next tick

    def __call__(self, rec: EngineRecord, new: EngineState, *, write: bool = True,
                 event: dict[str, object] | None = None, **fields: object) -> None:
        """Move ``rec`` to ``new``; ``write``: the state to Redis (False where the engine wrote it or Redis
        already says so); ``event``: the details of the event this transition announces."""
        old = rec.state
        check_transition(old, new)
        rec.state = new
        if new is S.STOPPING:
            rec.stopping_since = self.rt.monotonic()
        self.mirror_due = True
        log.info("engine %s: %s -> %s", rec.symbol, old.value if old else "-", new.value,
                 extra={"symbol": rec.symbol, "from": old.value if old else None, "to": new.value, **fields})
        announced = (ANNOUNCED[new], event) if event is not None else None
        if write:
            self.store.write(rec.symbol, event=announced, status=new.value, restarts=rec.restarts, owner=self.owner,
                             last_error=rec.last_error, transition_at=f"{self.rt.time():.3f}", **fields)
        elif announced is not None:
            self.store.event(announced[0], rec.symbol, **announced[1])
