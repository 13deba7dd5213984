"""RQ worker for the ``sentiment``, ``onchain`` and ``backtest`` queues: ``python -m backend.ml.features.worker``
(the manager starts ``--workers N`` of them), or ``rq worker -w backend.ml.features.worker.LeviWorker``.

What RQ leaves to its defaults, and what this class changes:
- A worker ``kill -9``ed mid-job: RQ notices only when the started-job entry expires
  (job-monitoring interval + 60 s) and its worker key after ``worker_ttl`` + 60 s. Here every
  worker keeps a short "alive" key (3 s TTL) from a side thread, and every worker (and the
  manager) requeues the jobs of workers whose key is gone within seconds. The requeue is
  decided by one ``ZREM`` on the started registry, so two reapers never run a job twice.
- The work-horse RQ forks for each job is in its own process group and outlives a killed
  worker; here it gets ``PR_SET_PDEATHSIG`` = SIGKILL, so no orphan keeps running.
- Retries with an interval sit in the scheduled registry until a scheduler promotes them;
  RQ's scheduler is a separate forked process (another orphan on kill -9), so the side
  thread promotes due jobs itself, again decided by one ``ZREM`` per job.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from backend.ml.features.jobs import queue_names
from backend.src.core.keys import Keys
from backend.src.core.redis_url import connect
from backend.src.core.settings import Settings

log = logging.getLogger(__name__)


def requeue_abandoned(conn: redis.Redis, keys: Keys, queues: list[Queue], grace_s: float) -> list[str]:
    """Requeue started jobs whose worker has no alive key. Returns the job ids requeued."""
    done = []
    now = time.time()
    for q in queues:
        reg = q.started_job_registry
        for job_id, exec_id in reg.get_job_and_execution_ids(cleanup=False):
            try:
                job = Job.fetch(job_id, connection=conn)
            except NoSuchJobError:
                conn.zrem(reg.key, f"{job_id}:{exec_id}")
                continue
            if job.get_status(refresh=False) != JobStatus.STARTED or not job.worker_name:
                continue
            if conn.exists(keys.worker_alive(job.worker_name)):
                continue
            started = job.started_at.timestamp() if job.started_at else 0.0
            if now - started < grace_s:
                continue  # its worker may be registering right now
            if not conn.zrem(reg.key, f"{job_id}:{exec_id}"):
                continue  # another reaper won
            q.enqueue_job(job, at_front=True)
            log.warning("job %s: worker %s is gone; requeued", job_id, job.worker_name)
            done.append(job_id)
    return done


def promote_scheduled(conn: redis.Redis, queues: list[Queue]) -> int:
    """Move due retries (scheduled registry) back onto their queue; one winner per job."""
    n = 0
    for q in queues:
        reg = q.scheduled_job_registry
        for job_id in reg.get_jobs_to_schedule(int(time.time())):
            if not conn.zrem(reg.key, job_id):
                continue
            try:
                q.enqueue_job(Job.fetch(job_id, connection=conn))
                n += 1
            except NoSuchJobError:
                continue
    return n


class LeviWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.levi = Settings()
        self.levi_keys = Keys(self.levi.namespace)
        self._alive_stop = threading.Event()
        self._alive: threading.Thread | None = None
        self._parent_pid = os.getpid()

    # --- liveness side thread -------------------------------------------------------------
    def register_birth(self) -> None:
        super().register_birth()  # type: ignore[no-untyped-call]
        self._beat()
        self._alive = threading.Thread(target=self._alive_loop, name="levibot-alive", daemon=True)
        self._alive.start()

    def register_death(self) -> None:
        self._alive_stop.set()
        try:
            self.connection.delete(self.levi_keys.worker_alive(self.name))
        except redis.RedisError:
            pass
        super().register_death()  # type: ignore[no-untyped-call]

    def _beat(self) -> None:
        self.connection.set(self.levi_keys.worker_alive(self.name), str(os.getpid()),
                            px=int(self.levi.worker_alive_ttl_s * 1000))

    def _alive_loop(self) -> None:
        period = self.levi.worker_alive_ttl_s / 3
        while not self._alive_stop.wait(period):
            try:
                self._beat()
                requeue_abandoned(self.connection, self.levi_keys, self.queues, self.levi.worker_alive_ttl_s)
                promote_scheduled(self.connection, self.queues)
            except redis.RedisError as exc:
                log.warning("worker %s: redis: %s", self.name, exc)

    # --- the work-horse dies with us --------------------------------------------------------
    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        self._parent_pid = os.getpid()
        super().fork_work_horse(job, queue)

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # not Linux: the alive key still gets the job requeued
        if os.getppid() != self._parent_pid:
            os._exit(1)  # the worker died before prctl took effect
        super().main_work_horse(job, queue)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="levibot-worker", description="RQ worker: sentiment, on-chain, backtest jobs")
    p.add_argument("--name", default=None, help="worker name (unique among live workers)")
    p.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    args = p.parse_args(argv)
    settings = Settings()
    if settings.redis_url is None:
        print("levibot-worker: error: LEVIBOT_REDIS_URL is not set", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s worker %(name)s: %(message)s")
    # Import what the jobs need once, here: every job runs in a fresh fork of this process.
    import backend.ml.features.news  # noqa: F401, PLC0415
    import backend.ml.features.onchain_fetcher  # noqa: F401, PLC0415
    import backend.ml.research.parity  # noqa: F401, PLC0415
    import backend.ml.research.ui_backtest  # noqa: F401, PLC0415

    conn = connect(settings.redis_url, timeout=None, connect_timeout=5.0, decode=False)  # BLPOP blocks; RQ reads bytes
    queues = [Queue(n, connection=conn) for n in queue_names(settings)]
    worker = LeviWorker(queues, connection=conn, name=args.name, worker_ttl=30, job_monitoring_interval=5)
    worker.work(burst=args.burst, with_scheduler=False, logging_level=settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
