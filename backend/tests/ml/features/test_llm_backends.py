"""Gemma and OpenAI-compatible backends over real HTTP against local wire-format stand-ins,
with the real Redis cache and token bucket."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from pydantic import SecretStr

from backend.ml.features.llm_backends import parse_scores
from backend.ml.features.rate_limit import TokenBucket
from backend.ml.features.sentiment_extractor import GemmaSentiment
from backend.src.core.errors import UsageError
from backend.src.core.keys import Keys
from backend.src.core.settings import Settings
from backend.tests.fakes.llm_servers import LLMServer

TEXTS = ["Bitcoin ETF approval expected soon!", "Exchange hacked, $200M drained", "Bitcoin trades sideways"]


@pytest.fixture
def llm() -> Iterator[LLMServer]:
    server = LLMServer()
    yield server
    server.close()


def make(backend: str, llm: LLMServer, settings: Settings, r: redis.Redis | None, **extra: object) -> GemmaSentiment:
    extra = {k: SecretStr(v) if k.endswith("_key") else v for k, v in extra.items()}
    s = settings.model_copy(update={"gemma_base_url": llm.url, "gemma_api_key": SecretStr("test-key"),
                                    "openai_base_url": llm.url + "/v1", "llm_timeout_s": 2.0,
                                    "gemma_rpm": 6000.0, "openai_rpm": 6000.0, **extra})
    return GemmaSentiment(backend, settings=s, r=r, http=httpx.Client())  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["gemma", "openai"])
def test_remote_scores_and_wire_format(backend: str, llm: LLMServer, settings: Settings, r: redis.Redis) -> None:
    scores = make(backend, llm, settings, r).analyze_scored_batch(TEXTS)
    assert [s.score for s in scores] == [0.9, -0.9, 0.1]
    assert {s.source for s in scores} == {backend}
    req = llm.requests[0]
    if backend == "gemma":
        assert req["path"] == "/v1beta/models/gemma-3-27b-it:generateContent"
        assert "systemInstruction" not in req["body"]  # Gemma on AI Studio refuses it
        text = req["body"]["contents"][0]["parts"][0]["text"]
        assert "market" in text and "not by its tone" in text and "0. Bitcoin ETF" in text
    else:
        assert req["body"]["response_format"]["type"] == "json_schema"
        assert req["body"]["messages"][0]["role"] == "system"


def test_cache_hits_skip_the_server_and_expire_in_an_hour(llm: LLMServer, settings: Settings, r: redis.Redis) -> None:
    model = make("gemma", llm, settings, r)
    first = model.analyze_batch(TEXTS)
    assert model.analyze_batch([t.upper() + "  " for t in TEXTS]) == first  # normalised key
    assert len(llm.requests) == 1
    keys = list(r.scan_iter(Keys(settings.namespace).sentiment_cache("gemma", "*")))
    assert len(keys) == 3 and all(3590 < r.ttl(k) <= 3600 for k in keys)


def test_batches_of_at_most_100(llm: LLMServer, settings: Settings, r: redis.Redis) -> None:
    texts = [f"headline number {i} about a rally" for i in range(250)]
    assert make("openai", llm, settings, r).analyze_batch(texts) == [0.9] * 250
    sizes = [len(req["body"]["messages"][-1]["content"].splitlines()) - 1 for req in llm.requests]
    assert sizes == [100, 100, 50]


def test_429_retry_after_is_honoured(llm: LLMServer, settings: Settings, r: redis.Redis) -> None:
    llm.plan.extend(["429"])
    t0 = time.monotonic()
    scores = make("gemma", llm, settings, r).analyze_scored_batch(TEXTS)
    assert {s.source for s in scores} == {"gemma"}
    assert len(llm.requests) == 2 and llm.requests[1]["at"] - llm.requests[0]["at"] >= 0.95  # retryDelay "1s"
    assert time.monotonic() - t0 < 5


def test_openai_429_blocks_every_worker_sharing_the_bucket(llm: LLMServer, settings: Settings,
                                                           r: redis.Redis) -> None:
    llm.plan.extend(["429"])
    a, b = make("openai", llm, settings, r), make("openai", llm, settings, r)
    a.analyze_batch(["first rally"])
    t0 = time.monotonic()
    b.analyze_batch(["second rally"])  # b never saw the 429 but waits out the rest of the block
    assert time.monotonic() - t0 < 1.2
    assert llm.requests[-1]["at"] - llm.requests[0]["at"] >= 0.95


@pytest.mark.parametrize("plan", [["500", "503"], ["malformed"], ["slow"]])
def test_transient_errors_are_retried(plan: list[str], llm: LLMServer, settings: Settings, r: redis.Redis) -> None:
    llm.plan.extend(plan)
    scores = make("gemma", llm, settings, r, llm_timeout_s=0.5).analyze_scored_batch(TEXTS)
    assert {s.source for s in scores} == {"gemma"} and len(llm.requests) == len(plan) + 1


def test_backend_down_falls_back_to_the_lexicon_and_is_not_cached(llm: LLMServer, settings: Settings,
                                                                  r: redis.Redis) -> None:
    llm.plan.extend(["500"] * 3)
    model = make("gemma", llm, settings, r)
    scores = model.analyze_scored_batch(TEXTS)
    assert {s.source for s in scores} == {"lexicon:fallback"}
    assert scores[0].score > 0 and scores[1].score < 0
    assert {s.source for s in model.analyze_scored_batch(TEXTS)} == {"gemma"}  # recovered, not a cached fallback


def test_unreachable_server_falls_back(settings: Settings, r: redis.Redis) -> None:
    s = settings.model_copy(update={"openai_base_url": "http://127.0.0.1:9/v1", "llm_timeout_s": 0.5})
    model = GemmaSentiment("openai", settings=s, r=r, sleep=lambda _s: None)
    assert model.analyze_scored("SEC sues exchange").source == "lexicon:fallback"


@pytest.mark.parametrize("mode", ["fenced", "prose", "partial", "out_of_range"])
def test_messy_model_output(mode: str, llm: LLMServer, settings: Settings, r: redis.Redis) -> None:
    llm.plan.append(mode)
    scores = make("gemma", llm, settings, r).analyze_scored_batch(TEXTS)
    if mode == "out_of_range":
        assert [s.score for s in scores] == [1.0, 1.0, 1.0]  # 3.0 clamped
    else:
        assert [s.score for s in scores] == [0.9, -0.9, 0.1] and {s.source for s in scores} == {"gemma"}
    if mode == "partial":  # only the skipped item is asked again
        first, again = (q["body"]["contents"][0]["parts"][0]["text"] for q in llm.requests)
        skipped = first.splitlines()[-1].split(". ", 1)[1]  # the stand-in drops the last item
        assert again.endswith("Items (1):\n0. " + skipped)


def test_server_without_structured_output(llm: LLMServer, settings: Settings, r: redis.Redis) -> None:
    llm.plan.extend(["no_schema"])
    model = make("openai", llm, settings, r)
    assert model.analyze_batch(TEXTS) == [0.9, -0.9, 0.1]
    model.analyze_batch(["another rally"])
    assert "response_format" in llm.requests[0]["body"]
    assert all("response_format" not in q["body"] for q in llm.requests[1:])


def test_bad_key_falls_back_at_once(llm: LLMServer, settings: Settings, r: redis.Redis) -> None:
    model = make("gemma", llm, settings, r, gemma_api_key="wrong")
    assert model.analyze_scored(TEXTS[0]).source == "lexicon:fallback" and len(llm.requests) == 1


def test_gemma_needs_a_key(settings: Settings) -> None:
    with pytest.raises(UsageError, match="LEVIBOT_GEMMA_API_KEY"):
        GemmaSentiment("gemma", settings=settings)


def test_parse_scores_never_crashes() -> None:
    assert parse_scores('[0.5, "x", null, 7]', 4) == [0.5, None, None, 1.0]
    assert parse_scores('{"scores": [{"i": 1, "score": -0.2}, {"i": 9, "score": 1}]}', 2) == [None, -0.2]
    assert parse_scores('blah "i": 0, "score": 0.3 blah', 1) == [0.3]
    assert parse_scores("", 2) == [None, None]
    assert parse_scores('{"scores": [{"i": true, "score": NaN}]}', 1) == [None]


def test_token_bucket_paces_shared_callers(r: redis.Redis, ns: str) -> None:
    a = TokenBucket(r, f"{ns}bucket", per_minute=600, burst=2)
    b = TokenBucket(r, f"{ns}bucket", per_minute=600, burst=2)
    t0 = time.monotonic()
    for i in range(12):
        (a if i % 2 else b).acquire()
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed < 2.0  # 2 from the burst, 10 more at 10/s
