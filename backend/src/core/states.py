"""Engine state machine (leaf module: imports nothing from the project).

starting -> running -> (stopping -> stopped) | crashed -> restarting -> running | failed
``failed`` is permanent until an operator starts the engine again.
"""

from __future__ import annotations

from enum import StrEnum


class EngineState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CRASHED = "crashed"
    RESTARTING = "restarting"
    FAILED = "failed"


S = EngineState

TRANSITIONS: dict[EngineState, frozenset[EngineState]] = {
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.STOPPED, S.CRASHED, S.FAILED}),  # stopped: a queued start cancelled
    S.RUNNING: frozenset({S.STOPPING, S.CRASHED, S.FAILED}),
    S.STOPPING: frozenset({S.STOPPED, S.CRASHED}),
    S.STOPPED: frozenset({S.STARTING}),
    S.CRASHED: frozenset({S.RESTARTING, S.FAILED, S.STOPPED}),
    S.RESTARTING: frozenset({S.RUNNING, S.CRASHED, S.FAILED, S.STOPPED, S.STOPPING}),
    S.FAILED: frozenset({S.STARTING}),
}

# A record seen for the first time starts, or adopts what a previous manager left in Redis.
INITIAL = frozenset({S.STARTING, S.STOPPED, S.FAILED})
# Statuses in which an engine process exists or is about to (its pid and uptime are shown).
LIVE_STATES = frozenset({S.STARTING, S.RUNNING, S.RESTARTING, S.STOPPING})


class InvalidTransition(ValueError):
    def __init__(self, old: EngineState, new: EngineState) -> None:
        super().__init__(f"invalid engine transition {old.value} -> {new.value}")
        self.old, self.new = old, new


def check_transition(old: EngineState | None, new: EngineState) -> EngineState:
    """Return ``new`` if ``old -> new`` is allowed, else raise InvalidTransition.

    ``old is None`` (never seen) may only go to ``starting``, or adopt ``stopped``/``failed``.
    """
    if old is None:
        if new not in INITIAL:
            raise InvalidTransition(S.STOPPED, new)
        return new
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(old, new)
    return new
