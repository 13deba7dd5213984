"""The runtime a supervisor or an engine runs on: clocks, sleeping and process operations,
passed in explicitly (Supervisor-style) so the policies built on them can be tested with a
fake runtime, without processes or real time.

``Clock`` is all an engine needs; ``Runtime`` adds what the supervisor does to processes.
The real implementations are ``SystemClock`` (here) and ``supervisor.procs.SystemRuntime``.
"""

from __future__ import annotations

import time
from typing import Any, Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall clock, seconds since the epoch (what Redis and other processes compare)."""

    def monotonic(self) -> float:
        """Never goes back: deadlines, timeouts, backoff."""

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ProcessHandle(Protocol):
    """One child process as the supervisor holds it."""

    symbol: str
    pid: int
    create_time: float

    @property
    def exitcode(self) -> int | None: ...

    def alive(self) -> bool: ...

    def join(self, timeout: float) -> None:
        """Reap the exited process (waits at most ``timeout``)."""


class Runtime(Clock, Protocol):
    def spawn(self, spec: Any) -> ProcessHandle:
        """Start the process ``spec`` describes (an engine or a one-shot liquidation)."""

    def wait(self, handles: list[ProcessHandle], timeout: float) -> list[ProcessHandle]:
        """The handles whose process has exited, waiting at most ``timeout`` for one to exit."""

    def terminate(self, handle: ProcessHandle) -> bool:
        """SIGTERM our child, only if it is still the process we spawned."""

    def kill(self, handle: ProcessHandle) -> bool:
        """SIGKILL our child, only if it is still the process we spawned."""

    def is_engine(self, pid: int, symbol: str, started_at: float | None = None) -> bool:
        """``pid`` is a live engine for ``symbol`` (started at ``started_at``): never trust a bare pid."""

    def kill_verified(self, pid: int, symbol: str, started_at: float | None) -> bool:
        """SIGKILL a process we did not spawn (a previous manager's), only if its identity matches."""

    def write_note(self, symbol: str, text: str) -> None:
        """Leave the reason for an exit where the reaper reads it (``core.exit_notes``)."""

    def pop_note(self, symbol: str) -> str:
        """The reason an engine left for its exit, read once."""

    def rss(self, handle: ProcessHandle) -> int | None:
        """Resident memory of our child in bytes (None: gone, or no longer the process we spawned)."""
