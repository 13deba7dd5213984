"""AI-feature benchmark: ``python -m backend.scripts.bench_features --jobs 50 --workers 2``.

1. Lexicon throughput: the 200 labelled headlines scored by the offline backend, texts/s
   over repeated passes (min/median/p95 per pass).
2. Cache hit latency: ``analyze`` of a text already in the Redis cache (real Redis from the
   project launcher), per call min/median/p95.
3. RQ end to end: N ``refresh_sentiment`` jobs (a 5-headline JSONL, lexicon backend) through
   real worker processes; enqueue -> result in Redis, min/median/p95.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess  # noqa: S404 - the benchmark starts real workers
import sys
import tempfile
import time
from pathlib import Path

import redis
from rq import Queue
from rq.job import JobStatus

from backend.ml.features.jobs import queue_names, refresh_sentiment
from backend.ml.features.sentiment_extractor import GemmaSentiment
from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.redis_url import connect
from backend.src.core.settings import REPO_ROOT, Settings

HEADLINES = REPO_ROOT / "backend" / "tests" / "ml" / "features" / "labelled_headlines.jsonl"


def q(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


def line(name: str, xs: list[float], unit: str, scale: float = 1.0) -> str:
    return (f"{name}: min {min(xs) * scale:.2f} / median {statistics.median(xs) * scale:.2f} / "
            f"p95 {q(xs, 0.95) * scale:.2f} {unit} (n={len(xs)})")


def bench_lexicon(passes: int) -> None:
    texts = [json.loads(x)["text"] for x in HEADLINES.read_text().splitlines()]
    model = GemmaSentiment("lexicon", settings=Settings())
    rates = []
    for _ in range(passes):
        t0 = time.perf_counter()
        model.analyze_batch(texts)
        rates.append(len(texts) / (time.perf_counter() - t0))
    print(line("lexicon throughput", rates, "texts/s"))


def bench_cache(url: str, calls: int) -> None:
    settings = Settings(redis_url=url, namespace="benchfeat:")
    model = GemmaSentiment("lexicon", settings=settings, r=connect(url))
    model.analyze("Bitcoin ETF approval expected soon!")
    lat = []
    for _ in range(calls):
        t0 = time.perf_counter()
        model.analyze("Bitcoin ETF approval expected soon!")
        lat.append(time.perf_counter() - t0)
    print(line("cache hit analyze()", lat, "ms", 1000))


def bench_rq(url: str, tmp: Path, jobs: int, workers: int) -> None:
    news = tmp / "news.jsonl"
    news.write_text("".join(json.dumps({"text": f"Bitcoin rallies {i}%", "ts": time.time() - i}) + "\n"
                            for i in range(5)))
    env = {**os.environ, "LEVIBOT_REDIS_URL": url, "LEVIBOT_NAMESPACE": "benchfeat:",
           "LEVIBOT_NEWS_JSONL": str(news), "LEVIBOT_LOG_LEVEL": "WARNING"}
    procs = [subprocess.Popen([sys.executable, "-m", "backend.ml.features.worker", "--name", f"bench-{i}"],  # noqa: S603
                              env=env, cwd=REPO_ROOT) for i in range(workers)]
    try:
        conn = redis.Redis.from_url(url)
        queue = Queue(queue_names(Settings(namespace="benchfeat:"))[0], connection=conn)
        warm = queue.enqueue(refresh_sentiment, ["BTCUSDT"])
        while warm.get_status() != JobStatus.FINISHED:
            time.sleep(0.01)
        lat = []
        for _ in range(jobs):
            t0 = time.perf_counter()
            job = queue.enqueue(refresh_sentiment, ["BTCUSDT", "ETHUSDT"])
            while job.get_status() != JobStatus.FINISHED:
                if job.get_status() == JobStatus.FAILED:
                    raise SystemExit(f"job failed: {job.latest_result()}")
                time.sleep(0.002)
            lat.append(time.perf_counter() - t0)
        print(line(f"rq enqueue -> result ({workers} workers)", lat, "ms", 1000))
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=20)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    bench_lexicon(args.passes)
    with tempfile.TemporaryDirectory(prefix="levibot-bench-features-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        try:
            bench_cache(server.url, args.calls)
            bench_rq(server.url, Path(tmp), args.jobs, args.workers)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
