"""The supervisor's real runtime: spawn engines, wait for exits, check identities, signal.

Engines are forked from a multiprocessing *forkserver* that preloads the engine's modules
once, so a restart costs a fork (milliseconds), not an interpreter start plus imports.
Every engine also holds the read end of the manager's *lifeline* pipe; only the manager
holds the write end, so when the manager dies (even by ``kill -9``) each engine reads EOF
and stops itself. (The forkserver itself lives on until its last child has exited.)

A recorded pid is never trusted on its own (pids get reused): a process is ours only if
it is alive, its cmdline names ``engine-<SYMBOL>`` and its start time matches.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_sentinels
from multiprocessing.context import ForkServerContext
from pathlib import Path

import psutil

from backend.src.core import exit_notes
from backend.src.core.runtime import ProcessHandle, SystemClock
from backend.src.engine.main import run_engine
from backend.src.engine.spec import EngineSpec

# The engine entry point imports the whole engine stack; setproctitle is imported in the child.
PRELOAD = ["backend.src.engine.main", "backend.src.core.logging_setup", "setproctitle"]
FORKSERVER_INIT = "backend.src.engine.forkserver_init"


@dataclass
class EngineProcess:
    symbol: str
    process: mp.process.BaseProcess
    pid: int
    create_time: float

    @property
    def sentinel(self) -> int:
        return int(self.process.sentinel)

    @property
    def exitcode(self) -> int | None:
        return self.process.exitcode

    def alive(self) -> bool:
        return self.process.exitcode is None

    def join(self, timeout: float) -> None:
        self.process.join(timeout)


def proc_title(symbol: str) -> str:
    return f"engine-{symbol}"


def identity(pid: int) -> tuple[float, str] | None:
    """(create_time, cmdline) of a live, non-zombie process, else None."""
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p.create_time(), " ".join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def is_engine(pid: int, symbol: str, started_at: float | None = None, tolerance_s: float = 2.0) -> bool:
    """True only if ``pid`` is a live engine for ``symbol`` (and started at ``started_at``)."""
    ident = identity(pid)
    if ident is None:
        return False
    create_time, cmdline = ident
    if proc_title(symbol) not in cmdline.split():
        return False
    return started_at is None or abs(create_time - started_at) <= tolerance_s


class SystemRuntime(SystemClock):
    """Real clocks and real processes: engines forked from a forkserver, exit notes under
    ``<data dir>/run``."""

    def __init__(self, data_dir: Path, preload: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.ctx: ForkServerContext = mp.get_context("forkserver")  # type: ignore[assignment]
        # the forkserver first ignores SIGTERM (engine/forkserver_init.py), then imports what every engine needs
        self.ctx.set_forkserver_preload([FORKSERVER_INIT, *(preload if preload is not None else PRELOAD)])
        self.lifeline, self._lifeline_w = self.ctx.Pipe(duplex=False)

    def spawn(self, spec: EngineSpec) -> EngineProcess:
        proc = self.ctx.Process(
            target=run_engine, args=(spec, self.lifeline), name=proc_title(spec.symbol), daemon=False
        )
        proc.start()
        if proc.pid is None:  # pragma: no cover - start() either sets a pid or raises
            raise RuntimeError(f"engine {spec.symbol}: process did not start")
        ident = identity(proc.pid)
        created = ident[0] if ident else psutil.boot_time()
        return EngineProcess(spec.symbol, proc, proc.pid, created)

    def wait(self, handles: list[ProcessHandle], timeout: float) -> list[ProcessHandle]:
        by_sentinel = {h.sentinel: h for h in handles if isinstance(h, EngineProcess)}
        if not by_sentinel:
            self.sleep(timeout)
            return []
        return [by_sentinel[int(s)] for s in wait_sentinels(list(by_sentinel), timeout)]  # type: ignore[arg-type]

    def is_engine(self, pid: int, symbol: str, started_at: float | None = None) -> bool:
        return is_engine(pid, symbol, started_at)

    def write_note(self, symbol: str, text: str) -> None:
        exit_notes.write_note(self.data_dir, symbol, text)

    def pop_note(self, symbol: str) -> str:
        return exit_notes.pop_note(self.data_dir, symbol)

    @staticmethod
    def rss(handle: ProcessHandle) -> int | None:
        try:
            p = psutil.Process(handle.pid)
            if abs(p.create_time() - handle.create_time) > 0.5:
                return None
            return int(p.memory_info().rss)
        except psutil.Error:
            return None

    @staticmethod
    def send(handle: ProcessHandle, sig: int) -> bool:
        """Signal our own child, after checking it is still the process we spawned."""
        if not handle.alive():
            return False
        ident = identity(handle.pid)
        if ident is None or abs(ident[0] - handle.create_time) > 0.5:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(handle.pid, sig)
            return True
        return False

    def terminate(self, handle: ProcessHandle) -> bool:
        return self.send(handle, signal.SIGTERM)

    def kill(self, handle: ProcessHandle) -> bool:
        return self.send(handle, signal.SIGKILL)

    @staticmethod
    def kill_verified(pid: int, symbol: str, started_at: float | None, sig: int = signal.SIGKILL) -> bool:
        """Signal a process we did not spawn (previous manager's), only if identity matches."""
        if not is_engine(pid, symbol, started_at):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            return True
        return False
