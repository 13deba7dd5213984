"""The manager's side of the AI features: ``--workers N`` RQ worker processes, the periodic
fetch timer, and an immediate requeue of the job a dead worker held (the manager sees the
death at once; no waiting for RQ's registry cleanup)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import redis
from rq import Queue

from backend.ml.features.jobs import FeatureScheduler, queue_names
from backend.ml.features.worker import requeue_abandoned
from backend.src.core.keys import Keys
from backend.src.core.redis_url import connect
from backend.src.core.settings import Settings
from backend.src.supervisor.children import ChildProcess, WorkerProcess

log = logging.getLogger(__name__)


class WorkerPool:
    def __init__(self, settings: Settings, url: str, symbols: Callable[[], Iterable[str]]) -> None:
        self.keys = Keys(settings.namespace)
        self.rq = connect(url, timeout=5.0, decode=False)  # RQ reads bytes
        self.queues = [Queue(n, connection=self.rq) for n in queue_names(settings)]
        self.children = [WorkerProcess(settings, i, self._on_exit) for i in range(settings.workers)]
        self.scheduler = FeatureScheduler(settings, connect(url), self.rq, symbols)

    def start(self) -> None:
        for child in self.children:
            child.start()
        if self.children:
            log.info("%d rq workers on queues %s", len(self.children), ", ".join(q.name for q in self.queues))

    def step(self) -> None:
        for child in self.children:
            child.supervise()
        try:
            self.scheduler.tick()
        except redis.RedisError as exc:
            log.warning("feature scheduler: redis: %s", exc)

    def _on_exit(self, child: ChildProcess) -> None:
        assert isinstance(child, WorkerProcess)  # noqa: S101 - only workers register this callback
        try:
            self.rq.delete(self.keys.worker_alive(child.name))
            for job_id in requeue_abandoned(self.rq, self.keys, self.queues, grace_s=0.0):
                log.warning("requeued job %s of dead worker %s", job_id, child.name)
        except redis.RedisError as exc:
            log.warning("requeue after %s died: redis: %s", child.name, exc)

    def stop(self) -> None:
        for child in self.children:
            child.stop()
