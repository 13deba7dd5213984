"""Candle sources: a seeded synthetic feed and a replay of OHLCV files.

Engines import this module, so it stays light: no pandas, no numpy.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from backend.src.core.errors import UsageError
from backend.src.core.types import Candle

TIMEFRAME_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SECONDS_PER_YEAR = 365 * 86400


def timeframe_seconds(tf: str) -> int:
    return int(tf[:-1]) * TIMEFRAME_S[tf[-1]]


class CandleSource(Protocol):
    def warmup(self, n: int) -> list[Candle]:
        """Up to ``n`` candles that precede the next one ``poll`` will return."""

    def poll(self, now: float) -> Candle | None:
        """The next closed candle if it is due at wall time ``now``, else None."""

    @property
    def exhausted(self) -> bool: ...


# --------------------------------------------------------------------------- synthetic

REGIMES = (  # (name, volatility multiplier, drift in sigmas per candle)
    ("calm", 0.6, 0.0),
    ("trend_up", 1.0, 0.08),
    ("trend_down", 1.0, -0.08),
    ("volatile", 2.2, 0.0),
)


class SyntheticSource:
    """Seeded regime-switching random walk with fat tails.

    Candle ``k`` closes at wall time ``(k + 1) * interval_s``; its return depends only on
    ``(seed, symbol, k)``, so a restarted engine sees the same path, and history can be
    rebuilt backwards from the last known price. Each candle stands for one ``timeframe``
    (volatility is scaled to it) while the wall clock runs at ``interval_s`` per candle.
    """

    def __init__(
        self,
        symbol: str,
        *,
        seed: int,
        interval_s: float,
        timeframe: str,
        annual_volatility: float,
        price: float,
        now: float,
        regime_len: int = 240,
    ) -> None:
        self.symbol, self.seed, self.interval_s = symbol, seed, interval_s
        self.sigma = annual_volatility * math.sqrt(timeframe_seconds(timeframe) / SECONDS_PER_YEAR)
        self.regime_len = regime_len
        self.price = price
        self.next_k = self._index(now)  # first candle still open at start

    def _index(self, now: float) -> int:
        return math.floor(now / self.interval_s)

    def regime(self, k: int) -> tuple[str, float, float]:
        rng = random.Random(f"{self.seed}:{self.symbol}:regime:{k // self.regime_len}")  # noqa: S311
        return REGIMES[rng.randrange(len(REGIMES))]

    def _draw(self, k: int) -> tuple[float, float, float, float]:
        """(log return, high wick, low wick, volume) of candle k, deterministic."""
        rng = random.Random(f"{self.seed}:{self.symbol}:{k}")  # noqa: S311
        _, vol_mult, drift = self.regime(k)
        sigma = self.sigma * vol_mult
        z = rng.gauss(0.0, 1.0)
        if rng.random() < 0.02:  # fat tails: occasional jumps
            z *= 4.0
        r = drift * sigma + sigma * z
        up, down = abs(rng.gauss(0, 0.5)) * sigma, abs(rng.gauss(0, 0.5)) * sigma
        volume = rng.lognormvariate(0, 0.5) * (1.0 + 20.0 * abs(r) / max(sigma, 1e-12) / 10)
        return r, up, down, volume * 100.0

    def _candle(self, k: int, open_: float) -> Candle:
        r, up, down, vol = self._draw(k)
        close = open_ * math.exp(r)
        high = max(open_, close) * math.exp(up)
        low = min(open_, close) * math.exp(-down)
        return Candle(int(k * self.interval_s * 1000), open_, high, low, close, vol)

    def warmup(self, n: int) -> list[Candle]:
        out: list[Candle] = []
        close = self.price
        for k in range(self.next_k - 1, self.next_k - 1 - n, -1):
            r, _, _, _ = self._draw(k)
            open_ = close / math.exp(r)
            out.append(self._candle(k, open_))
            close = open_
        out.reverse()
        return out

    def poll(self, now: float) -> Candle | None:
        current = self._index(now)
        if current <= self.next_k:
            return None
        # Candles missed while the engine was down move the price too (capped walk).
        for k in range(max(self.next_k, current - 10_000), current - 1):
            self.price = self._candle(k, self.price).close
        candle = self._candle(current - 1, self.price)
        self.price = candle.close
        self.next_k = current
        return candle

    @property
    def exhausted(self) -> bool:
        return False


# --------------------------------------------------------------------------- replay


@dataclass(frozen=True)
class LoadReport:
    rows: int
    duplicates: int
    gaps: int
    timeframe_ms: int


def load_candles(path: Path) -> tuple[list[Candle], LoadReport]:
    """Read a CSV (timestamp ms, open, high, low, close, volume) or Parquet file.

    Rows are sorted by time, duplicate timestamps dropped (first kept); gaps are counted.
    Raises UsageError naming the file on any unreadable or malformed content.
    """
    try:
        rows = _read_parquet(path) if path.suffix == ".parquet" else _read_csv(path)
    except OSError as exc:
        raise UsageError(f"replay file {path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"replay file {path}: cannot read: not a text CSV file") from exc
    if not rows:
        raise UsageError(f"replay file {path}: no candles")
    rows.sort(key=lambda c: c.ts)
    out: list[Candle] = []
    dups = 0
    for c in rows:
        if out and c.ts == out[-1].ts:
            dups += 1
            continue
        out.append(c)
    steps = [b.ts - a.ts for a, b in zip(out, out[1:], strict=False)]
    tf = min(steps) if steps else 60_000
    gaps = sum(1 for s in steps if s > tf)
    return out, LoadReport(len(out), dups, gaps, tf)


def _read_csv(path: Path) -> list[Candle]:
    out: list[Candle] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        for lineno, row in enumerate(reader, start=1):
            if not row:
                continue
            if lineno == 1 and not row[0].strip().lstrip("-").isdigit():
                continue  # header
            try:
                ts = int(float(row[0]))
                o, h, lo, c, v = (float(x) for x in row[1:6])
            except (ValueError, IndexError) as exc:
                raise UsageError(f"replay file {path}: line {lineno}: malformed row") from exc
            out.append(Candle(ts, o, h, lo, c, v))
    return out


def _read_parquet(path: Path) -> list[Candle]:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - heavy, only for parquet replays
    except ImportError:
        raise UsageError(f"replay file {path}: Parquet needs pyarrow, which this install lacks (the runtime "
                         "image): replay a CSV file, or run from the trainer image") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises many types for bad files
        raise UsageError(f"replay file {path}: not a readable Parquet file") from exc
    cols = {name.lower(): name for name in table.column_names}
    need = ["timestamp", "open", "high", "low", "close", "volume"]
    missing = [n for n in need if n not in cols]
    if missing:
        raise UsageError(f"replay file {path}: missing column(s) {', '.join(missing)}")
    data = {n: table.column(cols[n]).to_pylist() for n in need}
    ts_col = data["timestamp"]
    if ts_col and not isinstance(ts_col[0], int | float):  # timestamp type -> ms
        ts_col = [int(t.timestamp() * 1000) for t in ts_col]
    return [
        Candle(int(t), float(o), float(h), float(lo), float(c), float(v))
        for t, o, h, lo, c, v in zip(
            ts_col, data["open"], data["high"], data["low"], data["close"], data["volume"], strict=True
        )
    ]


def is_candle_file(path: Path) -> bool:
    """A ``.csv`` or ``.parquet`` of candles, not the funding history saved beside them (``*-funding.csv``)."""
    return path.suffix in (".csv", ".parquet") and not path.stem.endswith("-funding")


def symbol_of_file(path: Path | str) -> str:
    """ETH_BTC-5m.csv → ETHBTC: the engine symbol a candle file stands for."""
    name = Path(path).stem if isinstance(path, Path) else path
    return name.split("-")[0].replace("_", "").replace("/", "").upper()


def resolve_replay_file(path: Path, symbol: str) -> Path:
    """The file to replay for ``symbol``: PATH itself, PATH with ``{symbol}``, or a match in a directory."""
    if "{symbol}" in str(path):
        path = Path(str(path).replace("{symbol}", symbol))
    if path.is_dir():
        matches = sorted(
            p for p in path.iterdir() if is_candle_file(p) and symbol_of_file(p) == symbol
        )
        if not matches:
            raise UsageError(f"--source: no replay file for {symbol} in {path}")
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise UsageError(f"--source: several replay files for {symbol} in {path} ({names}); name one")
        return matches[0]
    if not path.is_file():
        raise UsageError(f"--source: replay file {path} does not exist")
    return path


class ReplaySource:
    """Replays candles after ``after_ts`` at ``speed`` simulated seconds per wall second."""

    def __init__(self, candles: list[Candle], *, speed: float, after_ts: int | None, now: float) -> None:
        self.candles = candles
        self.speed = speed
        start = 0
        if after_ts is not None:
            start = next((i for i, c in enumerate(candles) if c.ts > after_ts), len(candles))
        self.i = start
        self.t0 = now
        self.ts0 = candles[start].ts if start < len(candles) else 0

    def warmup(self, n: int) -> list[Candle]:
        return self.candles[max(0, self.i - n) : self.i]

    def due_at(self, candle: Candle) -> float:
        return self.t0 + (candle.ts - self.ts0) / 1000.0 / self.speed

    def poll(self, now: float) -> Candle | None:
        if self.i >= len(self.candles):
            return None
        candle = self.candles[self.i]
        if now < self.due_at(candle):
            return None
        self.i += 1
        return candle

    @property
    def exhausted(self) -> bool:
        return self.i >= len(self.candles)

