"""Backtest and parity runs started from the dashboard: a record per run in Redis.

The API creates the record and enqueues the RQ job; the job (``backend/ml/research/ui_backtest.py``,
``backend/ml/research/parity.py``) writes its progress and, at the end, its result (JSON) or its error. The
newest ``RUNS_KEPT`` runs are kept.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

import redis

from backend.src.core.keys import Keys
from backend.src.core.redis_url import connect
from backend.src.core.settings import Settings

RUNS_KEPT = 50
Kind = Literal["backtest", "parity"]


def enqueue(settings: Settings, url: str, keys: Keys, kind: Kind, spec: dict[str, Any], func: str,
            *args: str) -> str:
    """Create a run's record, then queue its job on the ``backtest`` queue (the API's runs and the manager's
    periodic parity checks). RQ's client is synchronous and stores bytes: a connection of its own."""
    from rq import Queue  # noqa: PLC0415 - only where runs are queued

    from backend.src.core.keys import BACKTEST_QUEUE  # noqa: PLC0415

    r = connect(url)
    rq_conn = connect(url, timeout=5.0, decode=False)
    try:
        run_id = RunStore(r, keys).create(kind, spec)
        Queue(keys.queue(BACKTEST_QUEUE), connection=rq_conn).enqueue(
            func, run_id, *args, job_id=keys.job_id("run", run_id), job_timeout=settings.job_timeout_s,
            result_ttl=3600, failure_ttl=86_400)  # every RQ job: the one limit
        return run_id
    finally:
        r.close()
        rq_conn.close()


def job_redis(settings: Settings) -> redis.Redis:
    """The Redis a dashboard job reports to: the one its worker was started with."""
    if settings.redis_url is None:
        raise ValueError("LEVIBOT_REDIS_URL is not set in the worker's environment")
    return connect(settings.redis_url, timeout=5.0)


class RunStore:
    def __init__(self, r: redis.Redis, keys: Keys) -> None:
        self.r, self.keys = r, keys

    def create(self, kind: Kind, spec: dict[str, Any], now: float | None = None) -> str:
        run_id = uuid.uuid4().hex[:16]
        at = time.time() if now is None else now
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.keys.run(run_id), mapping={"id": run_id, "kind": kind, "status": "queued", "progress": "0",
                                                  "message": "queued", "spec": json.dumps(spec),
                                                  "created_at": f"{at:.3f}"})
        pipe.zadd(self.keys.runs, {run_id: at})
        pipe.execute()
        self.trim()
        return run_id

    def trim(self) -> None:
        old = self.r.zrange(self.keys.runs, 0, -RUNS_KEPT - 1)
        if old:
            pipe = self.r.pipeline(transaction=True)
            for run_id in old:  # type: ignore[union-attr]
                pipe.delete(self.keys.run(str(run_id)))
            pipe.zrem(self.keys.runs, *old)  # type: ignore[misc]
            pipe.execute()

    def progress(self, run_id: str, fraction: float, message: str) -> None:
        self.r.hset(self.keys.run(run_id), mapping={"status": "running", "progress": f"{fraction:.4f}",
                                                    "message": message})

    def finish(self, run_id: str, result: dict[str, Any], now: float | None = None) -> None:
        self.r.hset(self.keys.run(run_id), mapping={
            "status": "done", "progress": "1", "message": "done", "result": json.dumps(result, default=float),
            "finished_at": f"{time.time() if now is None else now:.3f}"})

    def fail(self, run_id: str, error: str, now: float | None = None) -> None:
        self.r.hset(self.keys.run(run_id), mapping={"status": "error", "message": error, "error": error,
                                                    "finished_at": f"{time.time() if now is None else now:.3f}"})


def view(raw: dict[str, str], *, with_result: bool) -> dict[str, Any]:
    """A run record as the API answers it."""
    out: dict[str, Any] = {k: raw.get(k) for k in ("id", "kind", "status", "message", "error")}
    out["progress"] = float(raw.get("progress") or 0)
    out["created_at"] = float(raw.get("created_at") or 0)
    out["finished_at"] = float(raw["finished_at"]) if raw.get("finished_at") else None
    out["spec"] = json.loads(raw.get("spec") or "{}")
    if with_result:
        out["result"] = json.loads(raw["result"]) if raw.get("result") else None
    return out
