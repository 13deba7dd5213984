"""Live candles from an exchange through ccxt (public OHLCV, no API key needed).

A background thread polls the exchange just after each candle closes, so a slow or dead
exchange never blocks the engine's loop (its heartbeat keeps flowing; the stall detector
reports the missing candles instead). After an outage it asks for everything since the
last candle it delivered: gaps are backfilled, and a gap the exchange itself has is logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from backend.src.core.errors import FatalError, TransientError
from backend.src.core.retry import retrying
from backend.src.core.types import Candle

log = logging.getLogger(__name__)
TF_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def timeframe_ms(tf: str) -> int:
    return int(tf[:-1]) * TF_MS[tf[-1]]


class LiveSource:
    def __init__(self, ex: Any, market: str, timeframe: str, *, poll_delay_s: float = 1.0,
                 clock: Callable[[], float] = time.time,
                 fetch: Callable[..., list[list[float]]] | None = None) -> None:
        from backend.src.market.exchange import fetch_candles  # noqa: PLC0415 - ccxt is heavy

        self.ex, self.market, self.timeframe = ex, market, timeframe
        self.tf_ms = timeframe_ms(timeframe)
        self.poll_delay_s, self.clock = poll_delay_s, clock
        self.fetch = fetch or fetch_candles
        self.queue: deque[Candle] = deque()
        self.lock = threading.Lock()
        self.last_ts: int | None = None  # after a restart: resume at the present, never trade stale candles
        self.error: BaseException | None = None
        self.gaps = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"live-{market}", daemon=True)

    @property
    def exhausted(self) -> bool:
        return False

    def warmup(self, n: int) -> list[Candle]:
        """The last ``n`` closed candles; then the poller starts right after the newest of them."""
        rows = self._closed(self.fetch(self.ex, self.market, self.timeframe, limit=n + 1))
        candles = [Candle(int(r[0]), *r[1:6]) for r in rows][-n:] if n else []
        self.last_ts = int(rows[-1][0]) if rows else self._last_closed_open_ts()
        self.thread.start()
        return candles

    def poll(self, now: float) -> Candle | None:
        if self.error is not None:
            raise FatalError(f"live source {self.ex.id} {self.market}: {self.error}")
        with self.lock:
            return self.queue.popleft() if self.queue else None

    def stop(self) -> None:
        self.stopping.set()

    # ------------------------------------------------------------------ thread

    def _last_closed_open_ts(self) -> int:
        now_ms = int(self.clock() * 1000)
        return now_ms - now_ms % self.tf_ms - self.tf_ms

    def _closed(self, rows: list[list[float]]) -> list[list[float]]:
        now_ms = self.clock() * 1000
        return [r for r in rows if r[0] + self.tf_ms <= now_ms]

    def _run(self) -> None:
        # Failures after the exchange layer's own retries: back off 1 s doubling to 30 s (reset by a
        # success), until the engine stops the source.
        policy = retrying(retry_if=lambda e: isinstance(e, TransientError), attempts=None, base_s=1.0,
                          cap_s=30.0, sleep=self.stopping.wait, stop_event=self.stopping,
                          label=f"live source {self.market}")
        while not self.stopping.is_set():
            due = self._next_close_s() + self.poll_delay_s
            if self.stopping.wait(max(0.0, due - self.clock())):
                return
            try:
                policy(self._catch_up)
            except TransientError:
                return  # stopping while it retried
            except Exception as exc:  # bad symbol, auth...: the engine stops with a clear reason
                log.error("live source %s failed: %s", self.market, exc)
                self.error = exc
                return

    def _next_close_s(self) -> float:
        last = self.last_ts if self.last_ts is not None else self._last_closed_open_ts()
        return (last + 2 * self.tf_ms) / 1000  # close time of the candle after the last one delivered

    def _catch_up(self) -> None:
        """Fetch every closed candle after ``last_ts`` (paginated), queue them in order."""
        while not self.stopping.is_set():
            since = (self.last_ts + self.tf_ms) if self.last_ts is not None else None
            rows = self._closed(self.fetch(self.ex, self.market, self.timeframe, since=since, limit=1000))
            rows = [r for r in rows if self.last_ts is None or r[0] > self.last_ts]
            if not rows:
                return
            if self.last_ts is not None and rows[0][0] > self.last_ts + self.tf_ms:
                missing = int((rows[0][0] - self.last_ts) // self.tf_ms) - 1
                self.gaps += 1
                log.warning("live source %s: exchange has no candles for %d period(s) after %d",
                            self.market, missing, self.last_ts)
            with self.lock:
                self.queue.extend(Candle(int(r[0]), *r[1:6]) for r in rows)
            self.last_ts = int(rows[-1][0])
            if len(rows) < 1000:
                return
