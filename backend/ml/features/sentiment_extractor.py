"""News sentiment in [-1, +1] judged by likely market impact.

``GemmaSentiment().analyze("Bitcoin ETF approval expected soon!")`` -> a positive score.
Backends: ``lexicon`` (offline default: VADER from the ``vaderSentiment`` package, which
bundles its lexicon, plus LeviBot's crypto overlay), ``gemma`` (Google AI Studio) and
``openai`` (any OpenAI-compatible server); see ``llm_backends``.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx
import redis

from backend.ml.features.crypto_lexicon import WORDS, phrase_valence
from backend.ml.features.llm_backends import (
    GemmaBackend,
    OpenAIBackend,
    RemoteBackend,
    RemoteRejected,
    RemoteUnavailable,
    RetryLater,
)
from backend.ml.features.rate_limit import RateLimited, TokenBucket
from backend.src.core.errors import UsageError
from backend.src.core.keys import Keys
from backend.src.core.retry import retrying
from backend.src.core.settings import Settings

log = logging.getLogger(__name__)
Backend = Literal["lexicon", "gemma", "openai"]
FALLBACK = ":fallback"  # suffix of a result's source when the lexicon stood in for the remote backend
REMOTE_ATTEMPTS = 3
MAX_RATE_WAIT_S = 60.0

URL = re.compile(r"https?://\S+|www\.\S+")
MENTION = re.compile(r"(?<!\w)@\w+")
CASHTAG = re.compile(r"(?<!\w)\$([A-Za-z]{2,10})\b")
TAG = re.compile(r"<[^>]+>")
SPACE = re.compile(r"\s+")
PHRASE_WEIGHT = 0.25  # one phrase rule moves the score like a strong single word does


def preprocess(text: str) -> str:
    """Strip HTML, URLs and @mentions, turn $BTC into BTC, collapse whitespace (emoji kept: VADER reads them)."""
    text = html.unescape(TAG.sub(" ", text))
    text = URL.sub(" ", text)
    text = MENTION.sub(" ", text)
    text = CASHTAG.sub(lambda m: m.group(1).upper(), text)
    return SPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class Score:
    score: float  # -1 .. +1
    source: str  # which backend produced it


class LexiconBackend:
    name = "lexicon"

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # noqa: PLC0415

        self.vader = SentimentIntensityAnalyzer()
        self.vader.lexicon.update(WORDS)

    def score(self, text: str) -> float:
        clean = preprocess(text)
        if not clean:
            return 0.0
        compound = float(self.vader.polarity_scores(clean)["compound"])
        boosted = math.atanh(max(-0.999, min(0.999, compound))) + PHRASE_WEIGHT * phrase_valence(clean) * 2
        return max(-1.0, min(1.0, math.tanh(boosted)))


def _worth_retrying(exc: BaseException) -> bool:
    """5xx/timeouts, and a 429 whose Retry-After is short enough to wait for."""
    return isinstance(exc, RemoteUnavailable) or (isinstance(exc, RetryLater) and exc.delay_s <= MAX_RATE_WAIT_S)


class GemmaSentiment:
    """Scores texts with the configured backend, through the Redis cache and the shared
    rate limiter when a Redis connection is given; falls back to the lexicon when the
    remote backend is down (the result's ``source`` says so)."""

    def __init__(self, backend: Backend | None = None, *, settings: Settings | None = None,
                 r: redis.Redis | None = None, http: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings if settings is not None else Settings()  # interactive use: env settings
        self.name: Backend = backend or self.settings.sentiment_backend
        self.keys = Keys(self.settings.namespace)
        self.r = r
        self.sleep = sleep
        self.lexicon = LexiconBackend()
        self.remote = build_remote(self.name, self.settings, http) if self.name != "lexicon" else None
        self.bucket: TokenBucket | None = None
        if self.remote is not None and r is not None:
            rpm = self.settings.gemma_rpm if self.name == "gemma" else self.settings.openai_rpm
            self.bucket = TokenBucket(r, self.keys.rate_bucket(self.name), rpm, sleep=sleep)

    def analyze(self, text: str) -> float:
        return self.analyze_scored_batch([text])[0].score

    def analyze_batch(self, texts: list[str]) -> list[float]:
        return [s.score for s in self.analyze_scored_batch(texts)]

    def analyze_scored(self, text: str) -> Score:
        return self.analyze_scored_batch([text])[0]

    def analyze_scored_batch(self, texts: list[str]) -> list[Score]:
        clean = [preprocess(t) for t in texts]
        out: list[Score | None] = self._cached(clean)
        todo = sorted({c for c, s in zip(clean, out, strict=True) if s is None and c})
        fresh: dict[str, Score] = {}
        for start in range(0, len(todo), self.settings.llm_batch):
            chunk = todo[start:start + self.settings.llm_batch]
            fresh.update(zip(chunk, self._score_chunk(chunk), strict=True))
        self._store({c: s for c, s in fresh.items() if not s.source.endswith(FALLBACK)})
        return [s if s is not None else fresh.get(c, Score(0.0, self.name)) for c, s in zip(clean, out, strict=True)]

    # --- internals -----------------------------------------------------------------------
    def _score_chunk(self, chunk: list[str]) -> list[Score]:
        if self.remote is None:
            return [Score(self.lexicon.score(t), "lexicon") for t in chunk]
        scores: list[float | None] = [None] * len(chunk)
        missing = list(range(len(chunk)))
        for _round in range(2):  # one request, then one more for items the model skipped
            got = self._remote_call([chunk[i] for i in missing])
            if got is None:
                break
            for i, value in zip(missing, got, strict=True):
                scores[i] = value
            missing = [i for i in missing if scores[i] is None]
            if not missing:
                break
        return [Score(v, self.name) if v is not None else Score(self.lexicon.score(t), "lexicon" + FALLBACK)
                for t, v in zip(chunk, scores, strict=True)]

    def _remote_call(self, texts: list[str]) -> list[float | None] | None:
        """The remote scores, or None when the backend stays down after a few tries (429s with
        a short Retry-After and 5xx are retried; a long Retry-After or a refusal is not)."""
        remote, bucket = self.remote, self.bucket
        assert remote is not None  # noqa: S101 - narrowed for mypy

        def once() -> list[float | None]:
            if bucket is not None:
                bucket.acquire(max_wait_s=MAX_RATE_WAIT_S)
            try:
                return remote.score_batch(texts)
            except RetryLater as exc:
                if bucket is not None:
                    bucket.block(exc.delay_s)  # every worker waits, not only this one
                raise

        def server_wait(exc: BaseException) -> float | None:  # a blocked bucket does the waiting itself
            return (0.0 if bucket is not None else exc.delay_s) if isinstance(exc, RetryLater) else None

        policy = retrying(retry_if=_worth_retrying, attempts=REMOTE_ATTEMPTS, base_s=0.5, sleep=self.sleep,
                          server_wait=server_wait, max_server_wait_s=MAX_RATE_WAIT_S, label=self.name)
        try:
            return policy(once)
        except RetryLater as exc:
            if exc.delay_s > MAX_RATE_WAIT_S:
                log.warning("%s; Retry-After %.0fs is too long, using the lexicon", exc, exc.delay_s)
                return None
            log.warning("%s: still rate limited after %d attempts; using the lexicon", self.name, REMOTE_ATTEMPTS)
        except RateLimited as exc:
            log.warning("%s; using the lexicon", exc)
        except RemoteRejected as exc:
            log.error("%s; using the lexicon", exc)
        except RemoteUnavailable:
            log.warning("%s: still failing after %d attempts; using the lexicon", self.name, REMOTE_ATTEMPTS)
        return None

    def _cache_key(self, clean: str) -> str:
        digest = hashlib.sha256(clean.casefold().encode()).hexdigest()[:32]
        return self.keys.sentiment_cache(self.name, digest)

    def _cached(self, clean: list[str]) -> list[Score | None]:
        if self.r is None or not clean:
            return [None] * len(clean)
        raw = self.r.mget([self._cache_key(c) for c in clean])
        out: list[Score | None] = []
        for c, v in zip(clean, raw, strict=True):
            if not c:
                out.append(Score(0.0, self.name))
            elif v is None:
                out.append(None)
            else:
                d = json.loads(v)
                out.append(Score(float(d["s"]), str(d["src"])))
        return out

    def _store(self, fresh: dict[str, Score]) -> None:
        if self.r is None or not fresh:
            return
        pipe = self.r.pipeline(transaction=False)
        for c, s in fresh.items():
            pipe.set(self._cache_key(c), json.dumps({"s": s.score, "src": s.source}),
                     ex=self.settings.sentiment_cache_ttl_s)
        pipe.execute()


def build_remote(name: str, settings: Settings, http: httpx.Client | None) -> RemoteBackend:
    client = http if http is not None else httpx.Client()
    if name == "gemma":
        if settings.gemma_api_key is None:
            raise UsageError("LEVIBOT_GEMMA_API_KEY: required for sentiment_backend=gemma")
        return GemmaBackend(client, settings.gemma_base_url, settings.gemma_model,
                            settings.gemma_api_key.get_secret_value(), settings.llm_timeout_s)
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAIBackend(client, settings.openai_base_url, settings.openai_model, key, settings.llm_timeout_s)
