"""Why an engine exited: a one-line note in ``<data dir>/run/<SYMBOL>.exit``.

Written by the engine on a fatal error or crash (or by the watchdog before it kills a hung
engine), read once and deleted by the manager when it reaps the process. A file, not
Redis: it must work while Redis is down.
"""

from __future__ import annotations

import signal
from pathlib import Path

from backend.src.core.errors import EXIT_ORPHANED


def _path(data_dir: Path, symbol: str) -> Path:
    return data_dir / "run" / f"{symbol}.exit"


def write_note(data_dir: Path, symbol: str, text: str) -> None:
    try:
        path = _path(data_dir, symbol)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text[:500], encoding="utf-8")
    except OSError:
        pass  # best effort: the exit code still tells the manager what kind of exit it was


def pop_note(data_dir: Path, symbol: str) -> str:
    path = _path(data_dir, symbol)
    try:
        text = path.read_text(encoding="utf-8").strip()
        path.unlink()
    except OSError:
        return ""
    return text


def describe_exit(code: int | None, note: str) -> str:
    if code is not None and code < 0:
        base = f"killed by {signal.Signals(-code).name}"
    elif code == EXIT_ORPHANED:
        base = "stopped itself: supervisor gone"
    else:
        base = f"exit code {code}"
    return f"{base}: {note}" if note else base
