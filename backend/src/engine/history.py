"""What the dashboard draws of an engine, pushed with its heartbeat.

Every traded candle (OHLCV, the position and the equity after it, the wall time) and every fill go
to capped Redis streams (``Keys.history`` / ``Keys.fills``, ``history_len`` entries each), buffered in
memory and written in one pipeline per heartbeat, so a fast replay costs one round trip per beat, not
per candle. The candles are also appended to ``<data dir>/candles/<SYMBOL>.csv``, in sessions (a
marker and the warm-up history at each start or config change), which is what the parity panel
replays through the backtester (format: ``market/candle_log.py``). Sessions accumulate across restarts
(the attribution of a difference to a restart's warm-up needs them); once the file passes
``MAX_FILE_BYTES`` it rolls over to a new session warmed on the recent candles (bounded disk, about 80
bytes a candle).
None of this is a money path: the journal is the record of truth; a Redis outage drops the oldest buffered
records beyond ``MAX_BUFFER``, never blocks trading.
"""

from __future__ import annotations

import math
import os
from collections import deque
from pathlib import Path

import redis

from backend.src.core.keys import Keys
from backend.src.core.types import Candle, Signal
from backend.src.market import candle_log
from backend.src.venue.orders import Fill

MAX_BUFFER = 5_000
RECENT = 2_000
MAX_FILE_BYTES = 8 * 1024 * 1024


class History:
    def __init__(self, r: redis.Redis, keys: Keys, symbol: str, path: Path, maxlen: int,
                 max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.r, self.keys, self.symbol, self.path, self.maxlen = r, keys, symbol, path, maxlen
        self.max_file_bytes = max_file_bytes
        self.records: deque[tuple[str, dict[str, str]]] = deque(maxlen=MAX_BUFFER)
        self.lines: list[str] = []
        self.recent: deque[Candle] = deque(maxlen=RECENT)  # a session after a config change warms from these
        self.written = 0
        path.parent.mkdir(parents=True, exist_ok=True)

    def session(self, journal_seq: int, warmup: list[Candle], *, why: str = "config", fresh: bool = False) -> None:
        """A start (``why="start"``) or an applied config: the journal's last entry then, and the strategy's
        warm-up. The file starts over when ``fresh`` (its size bound) or when it is missing."""
        if fresh or not self.path.exists() or self.path.stat().st_size == 0:
            self.lines.clear()
            self.path.write_text(candle_log.HEADER)
            self.written = len(candle_log.HEADER)
        elif not self.written:
            self.written = self.path.stat().st_size
        self.lines.append(candle_log.marker(journal_seq, why))
        self.lines += [candle_log.row(c, warm=True) for c in warmup]
        if not self.recent:
            self.recent.extend(warmup)

    def last(self, n: int) -> list[Candle]:
        return list(self.recent)[-n:] if n > 0 else []

    def candle(self, c: Candle, position: float, equity: float, now: float, signal: Signal | None = None,
               model: str = "") -> None:
        """A traded candle; ``signal``: the strategy's opinion on it (prob_up ``p``, confidence ``cf``,
        the model version ``mv``: the analytics store's predictions)."""
        self.recent.append(c)
        self.lines.append(candle_log.row(c, warm=False))
        record = {"ts": str(c.ts), "o": repr(c.open), "h": repr(c.high), "l": repr(c.low), "c": repr(c.close),
                  "v": repr(c.volume), "pos": repr(position), "eq": repr(equity), "at": f"{now:.3f}"}
        if signal is not None and math.isfinite(signal.prob_up):
            record.update(p=repr(signal.prob_up), cf=repr(signal.confidence), mv=model)
        self.records.append((self.keys.history(self.symbol), record))

    def fills(self, fills: list[Fill], position: float) -> None:
        """The candle's fills; ``position`` is the one after them. Each also goes to the fleet's notification
        stream (the notification webhooks' fills and stops)."""
        for f in fills:
            self.records.append((self.keys.fills(self.symbol), {
                "ts": str(f.candle_ts), "side": f.side, "qty": repr(f.qty), "price": repr(f.price),
                "fee": repr(f.fee), "order_id": f.order_id, "pos": repr(position), "at": f"{f.ts:.3f}",
                "reason": f.reason}))
            self.records.append((self.keys.notifications, {
                "type": "fill", "symbol": self.symbol, "side": f.side, "qty": f"{f.qty:.10g}",
                "price": f"{f.price:.10g}", "fee": f"{f.fee:.6g}", "reason": f.reason, "position": f"{position:.10g}",
                "candle_ts": str(f.candle_ts), "order_id": f.order_id, "at": f"{f.ts:.3f}"}))

    def flush(self, journal_seq: int, warmup_candles: int) -> None:
        """Write what is buffered; ``journal_seq`` and ``warmup_candles`` begin the next session if
        the candle file rolls over."""
        if self.lines:
            data = "".join(self.lines).encode()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            self.lines.clear()
            self.written += len(data)
            if self.written > self.max_file_bytes:
                self.session(journal_seq, self.last(warmup_candles), why="config", fresh=True)
        if not self.records:
            return
        pipe = self.r.pipeline(transaction=False)
        for key, fields in self.records:
            pipe.xadd(key, fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        try:
            pipe.execute()
        except redis.RedisError:
            return  # kept (bounded) for the next beat
        self.records.clear()
