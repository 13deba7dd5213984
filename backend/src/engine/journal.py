"""Per-symbol durable journal: one JSON object per line, appended and fsynced.

Redis is not the record of truth: this file is. An engine rebuilds its position from it on start.

* One engine per symbol on a host: the engine holds an exclusive ``flock`` on the file
  for its whole life (the kernel drops it on ``kill -9``).
* Fencing: every entry carries the writer's lease generation; a writer whose generation
  is lower than one already in the file is refused.
* A trailing partial line (torn write, power loss) was never acknowledged: it is cut off.
  A malformed line anywhere else is corruption and stops the engine.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.src.core.errors import JournalError
from backend.src.core.fsio import fsync_dir

log = logging.getLogger(__name__)


def encode(entry: dict[str, Any]) -> str:
    """One entry as its journal line (without the newline); the Redis copy holds the same text."""
    return json.dumps(entry, separators=(",", ":"))


class FileJournal:
    def __init__(self, path: Path, *, lock_wait_s: float = 3.0) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        if created:
            fsync_dir(path.parent)
        self._lock(lock_wait_s)
        self.entries: list[dict[str, Any]] = self._load()
        self.max_gen = max((int(e.get("gen", 0)) for e in self.entries), default=0)
        self.seq = max((int(e.get("seq", 0)) for e in self.entries), default=0)
        # Called with each entry once it is on disk, before the caller acts on it (the Redis copy).
        self.on_append: Callable[[dict[str, Any]], None] | None = None

    def _lock(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise JournalError(f"journal {self.path} is locked by another live engine") from None
                time.sleep(0.02)

    def _load(self) -> list[dict[str, Any]]:
        with open(self.path, "rb") as fh:
            data = fh.read()
        if not data:
            return []
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        if tail:
            # Torn final write: never fsynced as a whole, so never acknowledged. Cut it off.
            os.ftruncate(self.fd, len(data) - len(tail))
            os.fsync(self.fd)
            log.warning("journal %s: torn final line (%d bytes, never acknowledged) cut off", self.path, len(tail),
                        extra={"bytes": len(tail)})
        out: list[dict[str, Any]] = []
        for n, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise JournalError(f"journal {self.path}: line {n} is corrupt") from exc
            if not isinstance(entry, dict) or "type" not in entry:
                raise JournalError(f"journal {self.path}: line {n} is not a journal entry")
            out.append(entry)
        return out

    def append(self, entry: dict[str, Any], *, gen: int) -> dict[str, Any]:
        """Write one entry durably (write + fsync) and return it with seq and gen set."""
        if gen < self.max_gen:
            raise JournalError(
                f"journal {self.path}: write fenced off (generation {gen} < {self.max_gen} already written)"
            )
        self.seq += 1
        full = {"seq": self.seq, "gen": gen, **entry}
        line = (encode(full) + "\n").encode()
        written = os.write(self.fd, line)
        if written != len(line):  # pragma: no cover - regular files write fully or raise
            raise JournalError(f"journal {self.path}: short write")
        os.fsync(self.fd)
        self.max_gen = gen
        self.entries.append(full)
        if self.on_append is not None:
            self.on_append(full)
        return full

    def adopt(self, entries: list[dict[str, Any]]) -> None:
        """Append entries another engine wrote (a takeover), as they are: their seq and generation."""
        if not entries:
            return
        if int(entries[0]["seq"]) != self.seq + 1:
            raise JournalError(f"journal {self.path}: entries from seq {entries[0]['seq']} do not follow {self.seq}")
        data = b"".join((encode(e) + "\n").encode() for e in entries)
        if os.write(self.fd, data) != len(data):  # pragma: no cover - regular files write fully or raise
            raise JournalError(f"journal {self.path}: short write")
        os.fsync(self.fd)
        self.entries += entries
        self.seq = int(entries[-1]["seq"])
        self.max_gen = max(self.max_gen, *(int(e.get("gen", 0)) for e in entries))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["type"] == kind]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # also releases the flock
            self.fd = -1
