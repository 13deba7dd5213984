"""A fake ``Runtime`` for the watchdog: a virtual clock that only moves when the watchdog
sleeps or waits, and processes that are records (``crash`` ends one with an exit code). No
process is started, no real time passes."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class FakeProc:
    symbol: str
    pid: int
    create_time: float
    spec: Any
    code: int | None = None
    spawned_at: float = 0.0  # monotonic

    @property
    def exitcode(self) -> int | None:
        return self.code

    def alive(self) -> bool:
        return self.code is None

    def join(self, timeout: float) -> None:
        pass


@dataclass
class FakeRuntime:
    now: float = 1000.0  # monotonic
    wall_offset: float = 1.8e9
    procs: list[FakeProc] = field(default_factory=list)
    signals: list[tuple[str, int]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    exit_on_term: bool = True  # a polite engine exits 0 on SIGTERM
    next_pid: int = 40_000
    memory: dict[int, int] = field(default_factory=dict)  # pid -> resident bytes (what rss() reports)

    # clock
    def time(self) -> float:
        return self.wall_offset + self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    # processes
    def spawn(self, spec: Any) -> FakeProc:
        self.next_pid += 1
        p = FakeProc(spec.symbol, self.next_pid, self.time(), spec, spawned_at=self.now)
        self.procs.append(p)
        return p

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        exited = [h for h in handles if not h.alive()]
        if not exited:
            self.sleep(timeout)
        return exited

    def terminate(self, handle: Any) -> bool:
        self.signals.append((handle.symbol, signal.SIGTERM))
        if not handle.alive():
            return False
        if self.exit_on_term:
            handle.code = 0
        return True

    def kill(self, handle: Any) -> bool:
        self.signals.append((handle.symbol, signal.SIGKILL))
        if not handle.alive():
            return False
        handle.code = -signal.SIGKILL
        return True

    def is_engine(self, pid: int, symbol: str, started_at: float | None = None) -> bool:
        return any(p.pid == pid and p.symbol == symbol and p.alive() for p in self.procs)

    def kill_verified(self, pid: int, symbol: str, started_at: float | None) -> bool:
        for p in self.procs:
            if p.pid == pid and p.symbol == symbol and p.alive():
                return self.kill(p)
        return False

    def write_note(self, symbol: str, text: str) -> None:
        self.notes[symbol] = text

    def pop_note(self, symbol: str) -> str:
        return self.notes.pop(symbol, "")

    def rss(self, handle: Any) -> int | None:
        return self.memory.get(handle.pid) if handle.alive() else None

    # what the test does to the processes
    def live(self, symbol: str) -> FakeProc | None:
        return next((p for p in reversed(self.procs) if p.symbol == symbol and p.alive()), None)

    def crash(self, symbol: str, code: int = 1) -> FakeProc:
        p = self.live(symbol)
        assert p is not None, f"{symbol} has no live process"
        p.code = code
        return p
