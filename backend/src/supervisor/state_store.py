"""Engine state as the manager sees it: Redis hashes (live truth) + the JSON mirror.

Manager writes survive a Redis outage: they are merged into a pending buffer and flushed
when Redis answers again. ``engine_registry.json`` is rewritten atomically (temp file,
fsync, rename) in the seed's shape.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any

import redis

from backend.src.core.buckets import bucket_field
from backend.src.core.keys import Keys
from backend.src.core.states import LIVE_STATES

log = logging.getLogger(__name__)

EVENTS_MAXLEN = 10_000
RECOVERIES_KEEP = 1000
class StateStore:
    def __init__(self, r: redis.Redis, keys: Keys) -> None:
        self.r, self.keys = r, keys
        self.pending: dict[str, dict[str, str]] = {}
        self.pending_events: deque[dict[str, str]] = deque(maxlen=1000)
        self.pending_recoveries: list[float] = []
        self.redis_ok = True

    def write(self, symbol: str, *, event: tuple[str, dict[str, object]] | None = None, **fields: object) -> None:
        """The engine's state fields, and with ``event`` its event, in one transaction: a reader that sees
        the new state also sees the event that announced it."""
        self.pending.setdefault(symbol, {}).update({k: "" if v is None else str(v) for k, v in fields.items()})
        if event is not None:
            self._queue_event(event[0], symbol, event[1])
        self.flush()

    def event(self, kind: str, symbol: str, **detail: object) -> None:
        self._queue_event(kind, symbol, detail)
        self.flush()

    def _queue_event(self, kind: str, symbol: str, detail: dict[str, object]) -> None:
        self.pending_events.append({"type": kind, "symbol": symbol, "ts": f"{time.time():.3f}",
                                    **{k: str(v) for k, v in detail.items()}})

    def recovery(self, seconds: float) -> None:
        self.pending_recoveries.append(seconds)
        self.flush()

    def flush(self) -> bool:
        if not (self.pending or self.pending_events or self.pending_recoveries):
            return True
        try:
            pipe = self.r.pipeline(transaction=True)
            for symbol, fields in self.pending.items():
                pipe.hset(self.keys.state(symbol), mapping=dict(fields))  # type: ignore[arg-type]
                pipe.sadd(self.keys.engines, symbol)
            for ev in self.pending_events:
                pipe.xadd(self.keys.events, ev, maxlen=EVENTS_MAXLEN, approximate=True)  # type: ignore[arg-type]
            if self.pending_recoveries:
                pipe.lpush(self.keys.recoveries, *(f"{s:.6f}" for s in self.pending_recoveries))
                pipe.ltrim(self.keys.recoveries, 0, RECOVERIES_KEEP - 1)
                for s in self.pending_recoveries:
                    pipe.hincrby(self.keys.recovery_histogram, bucket_field(s), 1)
                    pipe.hincrbyfloat(self.keys.recovery_histogram, "sum", s)
                    pipe.hincrby(self.keys.recovery_histogram, "count", 1)
            pipe.execute()
        except redis.RedisError as exc:
            if self.redis_ok:
                log.warning("redis unreachable; manager state writes buffered", extra={"error": str(exc)})
            self.redis_ok = False
            return False
        if not self.redis_ok:
            log.info("redis back; buffered manager state flushed")
        self.redis_ok = True
        self.pending.clear()
        self.pending_events.clear()
        self.pending_recoveries.clear()
        return True

    def read_all(self, symbols: list[str]) -> dict[str, dict[str, str]]:
        pipe = self.r.pipeline(transaction=False)
        for s in symbols:
            pipe.hgetall(self.keys.state(s))
        return dict(zip(symbols, pipe.execute(), strict=True))

    def position(self, symbol: str) -> float | None:
        """The position the engine last reported (its journal is the truth); None if unknown."""
        try:
            raw = self.r.hget(self.keys.state(symbol), "position")
            return float(str(raw)) if raw not in (None, "") else 0.0
        except (redis.RedisError, ValueError):
            return None

    def heartbeats(self, symbols: list[str]) -> dict[str, tuple[int, int, float] | None]:
        """symbol -> (pid, generation, unix ts) of its last heartbeat, or None."""
        values = self.r.mget([self.keys.heartbeat(s) for s in symbols])
        out: dict[str, tuple[int, int, float] | None] = {}
        for s, v in zip(symbols, values, strict=True):
            if not v:
                out[s] = None
                continue
            pid, gen, ts = str(v).split(":")
            out[s] = (int(pid), int(gen), float(ts))
        return out


def registry_entry(state: dict[str, str], now: float) -> dict[str, Any]:
    """The seed's shape: status, pid, uptime (s), last_trade, pnl, plus restarts and last_error."""
    status = state.get("status", "unknown")
    started = float(state.get("started_at") or 0)
    live = status in LIVE_STATES
    pid = int(state["pid"]) if state.get("pid") and live else None
    return {
        "status": status,
        "pid": pid,
        "uptime": int(now - started) if started and status == "running" else 0,
        "last_trade": state.get("last_trade") or None,
        "pnl": round(float(state.get("pnl") or 0.0), 2),
        "position": float(state.get("position") or 0.0),
        "restarts": int(state.get("restarts") or 0),
        "last_error": state.get("last_error") or None,
        "started_at": started if pid else None,
    }


def read_registry(path: Path) -> dict[str, dict[str, Any]]:
    """The registry mirror a previous run left; a corrupt one is ignored, with a warning (it is
    rewritten from Redis within a second)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("registry %s unreadable (%s); ignored, it is rewritten from redis", path, exc)
        return {}
    if not isinstance(data, dict):
        log.warning("registry %s is not a JSON object; ignored, it is rewritten from redis", path)
        return {}
    return data
