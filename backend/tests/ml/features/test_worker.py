"""Real RQ worker processes on the real Redis: jobs land, a worker kill -9'd mid-job has its
job requeued within seconds (not RQ's 90 s + 10 min), exactly one result lands, and no
orphan work-horse is left; the manager starts, restarts and schedules for its workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.results import Result

from backend.ml.features.jobs import RETRY, enqueue_once, queue_names, refresh_onchain, refresh_sentiment
from backend.ml.features.news import MARKET
from backend.src.core.keys import Keys
from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.settings import REPO_ROOT, Settings
from backend.tests.conftest import ManagerProc, fast_env, wait_for
from backend.tests.fakes.llm_servers import DuneServer, LLMServer

pytestmark = pytest.mark.slow
HEADLINES = ["Bitcoin ETF approval expected soon", "Ethereum exchange hacked, $200M drained",
             "Solana rallies as inflows surge", "Markets wait for the Fed", "Bitcoin miners sell reserves"]


@pytest.fixture
def llm() -> Iterator[LLMServer]:
    server = LLMServer()
    yield server
    server.close()


@pytest.fixture
def news_file(tmp_path: Path) -> Path:
    f = tmp_path / "news.jsonl"
    now = time.time()
    f.write_text("".join(json.dumps({"text": h, "ts": now - 60 * i}) + "\n" for i, h in enumerate(HEADLINES)))
    return f


@pytest.fixture
def worker_env(redis_server: EmbeddedRedis, ns: str, data_dir: Path, llm: LLMServer,
               news_file: Path) -> dict[str, str]:
    return fast_env(redis_server.url, ns, data_dir, sentiment_backend="openai", openai_base_url=llm.url + "/v1",
                    news_jsonl=news_file, llm_timeout_s=20, worker_alive_ttl_s=1.5)


@pytest.fixture
def start_worker(worker_env: dict[str, str]) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, "-m", "backend.ml.features.worker", "--name", name], env=worker_env,
                             cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def rq_conn(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_server.url)
    yield conn
    conn.close()


def successes(job: Job) -> int:
    return sum(res.type == Result.Type.SUCCESSFUL for res in job.results())


def test_job_lands_through_a_real_worker(start_worker: Callable[[str], subprocess.Popen[bytes]],
                                         settings: Settings, rq_conn: redis.Redis, r: redis.Redis) -> None:
    start_worker(f"{settings.namespace[:-1]}-w1")
    q = Queue(queue_names(settings)[0], connection=rq_conn)
    job = q.enqueue(refresh_sentiment, ["BTCUSDT", "ETHUSDT"], retry=RETRY, job_timeout=60)
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, 30, what="job finished")
    keys = Keys(settings.namespace)
    assert r.zcard(keys.news_index(MARKET)) == 5
    btc = r.hgetall(keys.sentiment("BTCUSDT"))
    assert float(btc["count"]) == 2 and float(btc["mean"]) == pytest.approx(0.5)  # the stand-in: +0.9 and +0.1
    assert job.return_value()["new"] == 5


def test_worker_killed_mid_job(start_worker: Callable[[str], subprocess.Popen[bytes]], settings: Settings,
                               rq_conn: redis.Redis, r: redis.Redis, llm: LLMServer) -> None:
    llm.plan.append("sleep:8")  # the first scoring request hangs; the worker dies during it
    names = [f"{settings.namespace[:-1]}-a", f"{settings.namespace[:-1]}-b"]
    workers = {n: start_worker(n) for n in names}
    wait_for(lambda: all(r.exists(Keys(settings.namespace).worker_alive(n)) for n in names), 20, what="workers up")
    q = Queue(queue_names(settings)[0], connection=rq_conn)
    job = q.enqueue(refresh_sentiment, ["BTCUSDT"], retry=RETRY, job_timeout=60)
    wait_for(lambda: llm.requests, 20, what="the job reached the model")
    job.refresh()
    victim = workers[str(job.worker_name)]
    horses = psutil.Process(victim.pid).children()
    assert len(horses) == 1, "RQ forks one work-horse per job"
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: not horses[0].is_running() or horses[0].status() == psutil.STATUS_ZOMBIE, 3,
             what="the work-horse died with its worker")
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, 20, what="job finished elsewhere")
    took = time.monotonic() - killed_at
    assert took < 10, f"requeued and finished {took:.1f}s after the kill"
    print(f"kill -9 -> job finished by another worker in {took:.2f}s")
    job.refresh()
    assert job.worker_name != victim and successes(job) == 1
    keys = Keys(settings.namespace)
    assert r.zcard(keys.news_index(MARKET)) == 5, "exactly one result"
    assert len(llm.calls("/chat/completions")) == 2


def test_failed_fetch_is_retried_with_backoff(start_worker: Callable[[str], subprocess.Popen[bytes]],
                                              worker_env: dict[str, str], settings: Settings,
                                              rq_conn: redis.Redis) -> None:
    dune = DuneServer(pending_polls=0)
    try:
        dune.plan.extend(["500"] * 2)  # the first two runs fail at execute; the third succeeds
        worker_env.update({"LEVIBOT_DUNE_API_KEY": "dune-key", "LEVIBOT_DUNE_BASE_URL": dune.url})
        start_worker(f"{settings.namespace[:-1]}-r")
        q = Queue(queue_names(settings)[1], connection=rq_conn)
        job = q.enqueue(refresh_onchain, "BTCUSDT", retry=RETRY, job_timeout=60)
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, 40, what="job finished after retries")
        job.refresh()
        assert job.retries_left == 1 and successes(job) == 1  # two of the three retries used
        execs = [q_["at"] for q_ in dune.requests if q_["path"].endswith("/execute")]
        assert execs[1] - execs[0] >= 1.0 and execs[2] - execs[1] >= 9.0  # intervals 2 s, 10 s (1 s resolution)
        assert job.return_value()["active_addresses_24h"] == 912345
    finally:
        dune.close()


def test_periodic_enqueue_is_idempotent(settings: Settings, rq_conn: redis.Redis, r: redis.Redis) -> None:
    q = Queue(queue_names(settings)[1], connection=rq_conn)
    keys = Keys(settings.namespace)
    job_id = f"{settings.namespace[:-1]}-onchain-BTCUSDT-1"
    assert enqueue_once(q, r, keys, job_id, refresh_onchain, "BTCUSDT", timeout_s=10, hold_s=60)
    assert not enqueue_once(q, r, keys, job_id, refresh_onchain, "BTCUSDT", timeout_s=10, hold_s=60)
    assert q.job_ids == [job_id]
    q.empty()


def test_manager_runs_schedules_and_restarts_workers(start_manager: Callable[..., ManagerProc],
                                                     worker_env: dict[str, str], settings: Settings,
                                                     r: redis.Redis) -> None:
    extra = {k.removeprefix("LEVIBOT_").lower(): v for k, v in worker_env.items()
             if k in ("LEVIBOT_SENTIMENT_BACKEND", "LEVIBOT_OPENAI_BASE_URL", "LEVIBOT_NEWS_JSONL")}
    m = start_manager(["BTCUSDT", "ETHUSDT"], "--workers", "2", **extra)
    keys = Keys(settings.namespace)
    wait_for(lambda: r.hget(keys.sentiment("ETHUSDT"), "count"), 60, what="scheduled sentiment published")
    assert float(r.hget(keys.sentiment("ETHUSDT"), "count") or 0) == 1

    def workers() -> list[psutil.Process]:
        out = []
        for p in psutil.Process(m.pid).children():  # direct children: a work-horse is a grandchild
            try:
                if " ".join(p.cmdline()).startswith("rq:worker:levibot-"):  # RQ's process title
                    out.append(p)
            except psutil.Error:
                continue  # a zombie not yet reaped
        return out

    wait_for(lambda: len(workers()) == 2, 20, what="2 workers")
    seen = workers()
    seen[0].kill()
    wait_for(lambda: len(workers()) == 2 and seen[0].pid not in [p.pid for p in workers()], 20,
             what="worker restarted")
    seen += workers()
    assert m.stop() == 0
    assert not [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], "nothing left behind"
