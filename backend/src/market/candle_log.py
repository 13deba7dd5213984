"""The candles an engine traded, as it saw them: ``<data dir>/candles/<SYMBOL>.csv``.

Columns ``ts,open,high,low,close,volume,warmup``, in sessions: each time the engine starts (or
applies a new config) it writes a marker ``#session seq=<N> why=start|config`` (the last journal entry it
had then, and why the session began), the warm-up history its strategy got (``warmup`` = 1), then every
candle it trades. Sessions accumulate across restarts (the file starts over only past its size bound).
The parity panel replays the latest session through the backtester from the journal as it stood at the
marker, and attributes the difference across every session in the file (a restart's warm-up, a config
change); it is analysis data, not a money path (the journal is the record of truth), so it is appended
without fsync and a line that does not parse (a torn tail) is skipped when read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backend.src.core.types import Candle

COLUMNS = ("ts", "open", "high", "low", "close", "volume", "warmup")
HEADER = ",".join(COLUMNS) + "\n"


def path_of(data_dir: Path, symbol: str) -> Path:
    return data_dir / "candles" / f"{symbol}.csv"


@dataclass
class Session:
    seq: int  # the journal's last entry when the session began
    why: str = "start"  # start (the engine started: a restart's warm-up) | config (a new config applied)
    warmup: list[Candle] = field(default_factory=list)
    traded: list[Candle] = field(default_factory=list)


def marker(seq: int, why: str = "start") -> str:
    return f"#session seq={seq} why={why}\n"


def row(c: Candle, *, warm: bool) -> str:
    return f"{c.ts},{c.open!r},{c.high!r},{c.low!r},{c.close!r},{c.volume!r},{int(warm)}\n"


def read(path: Path) -> list[Session]:
    """The file's sessions, oldest first (candles before any marker: one session from seq 0)."""
    sessions: list[Session] = []
    if not path.exists():
        return sessions
    for line in path.read_text().splitlines():
        if line.startswith("#session seq="):
            seq, _, why = line.removeprefix("#session seq=").partition(" why=")
            try:
                sessions.append(Session(int(seq), why.strip() or "start"))
            except ValueError:
                continue
            continue
        parts = line.split(",")
        if len(parts) != len(COLUMNS) or parts[0] == "ts":
            continue
        try:
            c = Candle(int(parts[0]), *(float(x) for x in parts[1:6]))
        except ValueError:
            continue
        if not sessions:
            sessions.append(Session(0))
        (sessions[-1].warmup if parts[6] == "1" else sessions[-1].traded).append(c)
    return sessions
