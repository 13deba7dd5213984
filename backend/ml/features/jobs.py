"""RQ jobs for the AI features and their periodic, idempotent enqueueing.

A job is an entry point: it builds its settings from the worker's environment (secrets
never travel in a job payload) and writes its results to Redis idempotently (news items
keyed by content, on-chain values overwritten), so a retried or requeued job never
double-counts. Periodic jobs get an id from their period bucket and a SET NX marker, so
two managers, or a manager restarted within a period, enqueue each fetch once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import redis
from rq import Queue, Retry

from backend.src.core.keys import RQ_QUEUES, Keys
from backend.src.core.redis_url import connect
from backend.src.core.settings import Settings

log = logging.getLogger(__name__)
SENTIMENT, ONCHAIN, BACKTEST = RQ_QUEUES
RETRY = Retry(max=3, interval=[2, 10, 30])


class FetchFailed(Exception):
    """Every source of a job failed: RQ retries it with backoff."""


def queue_names(settings: Settings) -> tuple[str, str, str]:
    """``sentiment``, ``onchain`` and ``backtest`` (the dashboard's backtests and parity runs), in the
    order workers serve them: a long backtest never delays the feature refreshes queued before it.
    Prefixed under a non-default namespace so that several deployments (or test runs) share one Redis."""
    keys = Keys(settings.namespace)
    return keys.queue(SENTIMENT), keys.queue(ONCHAIN), keys.queue(BACKTEST)


def worker_redis(settings: Settings) -> redis.Redis:
    if settings.redis_url is None:
        raise FetchFailed("LEVIBOT_REDIS_URL is not set in the worker's environment")
    return connect(settings.redis_url, timeout=5.0)


def refresh_sentiment(symbols: list[str]) -> dict[str, Any]:
    """Read the news sources, score the new items, publish per-symbol aggregates."""
    from backend.ml.features.news import fetch_feeds, ingest, publish, read_jsonl  # noqa: PLC0415
    from backend.ml.features.sentiment_extractor import GemmaSentiment  # noqa: PLC0415

    settings = Settings()
    r = worker_redis(settings)
    keys = Keys(settings.namespace)
    now = time.time()
    # An HTTP client costs ~25 ms (TLS context): only when a feed or a remote model needs one.
    http = httpx.Client() if settings.news_feeds or settings.sentiment_backend != "lexicon" else None
    try:
        items, errors = fetch_feeds(http, settings.news_feeds, now, symbols) if http else ([], [])
        if settings.news_jsonl is not None:
            try:
                items += read_jsonl(settings.news_jsonl, now, symbols)
            except OSError as exc:
                errors.append(f"{settings.news_jsonl}: {exc}")
        n_sources = len(settings.news_feeds) + (settings.news_jsonl is not None)
        if n_sources and len(errors) == n_sources:
            raise FetchFailed("every news source failed: " + "; ".join(errors))
        stats = ingest(r, keys, items, GemmaSentiment(settings=settings, r=r, http=http))
    finally:
        if http is not None:
            http.close()
    aggregates = publish(r, keys, symbols, now, settings.news_window_s, settings.news_half_life_s)
    return {**stats, "errors": errors, "aggregates": aggregates}


def refresh_onchain(symbol: str) -> dict[str, Any]:
    """Fetch the symbol's on-chain metrics and funding rate into the cache."""
    from backend.ml.features.onchain_fetcher import OnchainFetcher, ccxt_funding  # noqa: PLC0415

    settings = Settings()
    fetcher = OnchainFetcher(settings, worker_redis(settings), funding=ccxt_funding(settings))
    metrics = fetcher.get(symbol, force=True)
    if metrics.errors:
        raise FetchFailed(f"{symbol}: " + "; ".join(metrics.errors))  # last known value still served
    return fetcher.as_dict(metrics)


def enqueue_once(q: Queue, marker: redis.Redis, keys: Keys, job_id: str, func: Callable[..., Any],
                 *args: Any, timeout_s: int, hold_s: float) -> bool:
    """Enqueue ``func(*args)`` as ``job_id`` unless someone already did (within ``hold_s``)."""
    if not marker.set(keys.job_marker(job_id), "1", nx=True, ex=max(1, int(hold_s))):
        return False
    q.enqueue(func, *args, job_id=job_id, job_timeout=timeout_s, retry=RETRY, result_ttl=3600,
              failure_ttl=86400, description=f"{func.__name__}{args!r}")
    return True


class FeatureScheduler:
    """The manager's timer: enqueue the periodic fetches that are configured."""

    def __init__(self, settings: Settings, r: redis.Redis, rq_conn: redis.Redis,
                 symbols: Callable[[], Iterable[str]], clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.r = r
        self.keys = Keys(settings.namespace)
        names = queue_names(settings)
        self.sentiment_q = Queue(names[0], connection=rq_conn)
        self.onchain_q = Queue(names[1], connection=rq_conn)
        self.symbols = symbols
        self.clock = clock
        self.next_due = 0.0
        self.news = bool(settings.news_feeds or settings.news_jsonl)
        self.onchain = bool(settings.dune_api_key or settings.funding_exchange)

    def tick(self) -> int:
        """Called every manager step; does work at most once a second. Returns jobs enqueued."""
        now = self.clock()
        if now < self.next_due or not (self.news or self.onchain):
            return 0
        self.next_due = now + 1.0
        s, n = self.settings, 0
        syms = sorted(self.symbols())
        if self.news and len(self.sentiment_q) < 2:
            bucket = int(now // s.news_interval_s)
            n += enqueue_once(self.sentiment_q, self.r, self.keys, self.keys.job_id("sentiment", bucket),
                              refresh_sentiment, syms, timeout_s=s.job_timeout_s, hold_s=s.news_interval_s * 2)
        if self.onchain and len(self.onchain_q) < 2 * max(1, len(syms)):
            bucket = int(now // s.onchain_interval_s)
            for sym in syms:
                n += enqueue_once(self.onchain_q, self.r, self.keys, self.keys.job_id("onchain", sym, bucket),
                                  refresh_onchain, sym, timeout_s=s.job_timeout_s, hold_s=s.onchain_interval_s * 2)
        return n
