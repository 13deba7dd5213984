"""The machine to oneself, for the moments a test holds the product to a real-time bound.

The suite runs on pytest-xdist workers (whole files per worker). Most tests only need their own Redis
namespace, ports and data directory; a few measure wall-clock promises (heartbeats within 2 s of Redis
returning) that no program keeps on a machine whose two cores several busy workers share. Every test
holds this run's lock shared while it runs; ``alone()`` trades it for the exclusive one for the measured
window: it waits until the other workers' current tests end, and none starts a new test until it is done.
A turnstile lock keeps new tests from slipping in while it waits (no writer starvation). Without xdist it
costs nothing: there is no one else.

A readers-writer lock over two ``flock``-ed files (one open file per process, so each worker holds its own).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ENV = "TEST_MACHINE_LOCK_DIR"  # not LEVIBOT_: the product never sees it


class MachineLock:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.turnstile: IO[str] = (directory / "turnstile").open("a")
        self.room: IO[str] = (directory / "room").open("a")

    @classmethod
    def for_this_run(cls) -> MachineLock:
        """The run's lock: the directory the controller made (``configure``); workers inherit its path."""
        return cls(Path(os.environ[ENV]))

    @staticmethod
    def configure(cleanup: Callable[[Callable[[], None]], None]) -> None:
        """In the controller (or a run without workers): a fresh directory for this run, removed after it."""
        directory = tempfile.mkdtemp(prefix="levibot-tests-machine-")
        os.environ[ENV] = directory
        cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))

    def enter(self) -> None:
        """Shared: as many tests as there are workers."""
        fcntl.flock(self.turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.room, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self.turnstile, fcntl.LOCK_UN)

    def leave(self) -> None:
        fcntl.flock(self.room, fcntl.LOCK_UN)

    @contextmanager
    def alone(self) -> Iterator[None]:
        """Exclusive for the block: the other workers' tests have ended, no new one starts."""
        fcntl.flock(self.room, fcntl.LOCK_UN)
        fcntl.flock(self.turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.room, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.room, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self.turnstile, fcntl.LOCK_UN)
            self.enter()

    def close(self) -> None:
        self.turnstile.close()
        self.room.close()
