"""The candles an engine traded, as it saw them: ``<data dir>/candles/<SYMBOL>.csv``.

Columns ``ts,open,high,low,close,volume,warmup``: the warm-up history of the engine's first start
(``warmup`` = 1), then every candle it traded, appended in order. The parity panel replays this file
through the backtester; it is analysis data, not a money path (the journal is the ledger), so it is
appended without fsync and a torn last line is skipped when read.
"""

from __future__ import annotations

from pathlib import Path

from backend.src.core.types import Candle

COLUMNS = ("ts", "open", "high", "low", "close", "volume", "warmup")
HEADER = ",".join(COLUMNS) + "\n"


def path_of(data_dir: Path, symbol: str) -> Path:
    return data_dir / "candles" / f"{symbol}.csv"


def row(c: Candle, *, warm: bool) -> str:
    return f"{c.ts},{c.open!r},{c.high!r},{c.low!r},{c.close!r},{c.volume!r},{int(warm)}\n"


def read(path: Path) -> tuple[list[Candle], list[Candle]]:
    """(warm-up candles, traded candles); a line that does not parse (a torn tail) is skipped."""
    warm: list[Candle] = []
    traded: list[Candle] = []
    if not path.exists():
        return warm, traded
    for line in path.read_text().splitlines():
        parts = line.split(",")
        if len(parts) != len(COLUMNS) or parts[0] == "ts":
            continue
        try:
            c = Candle(int(parts[0]), *(float(x) for x in parts[1:6]))
        except ValueError:
            continue
        (warm if parts[6] == "1" else traded).append(c)
    return warm, traded
