"""``POST /signals/{symbol}`` over real HTTP against the real Redis: only signed (or TradingView-secret),
fresh, unique, well-formed signals within their source's rate are taken; every refusal is one line with
its status — 401, 404, 409, 422, 429 — never a 500, and nothing reaches the signal stream."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from backend.src.core.config import StrategyConfig, SymbolConfig
from backend.src.core.signals import parse_sources, sign
from backend.tests.conftest import ApiServer, fast_env

TV, BOT = "tv-" + uuid.uuid4().hex, "bot-" + uuid.uuid4().hex  # per-run secrets
SECRETS = f"tv=tradingview:{TV},bot=hmac:{BOT}"


def publish(r: redis.Redis, ns: str, symbol: str, strategy: str = "webhook") -> None:
    cfg = SymbolConfig(strategy=StrategyConfig(name=strategy))
    r.hset(f"{ns}config:{symbol}", mapping={"json": json.dumps(cfg.model_dump(mode="json")), "version": "1"})


@pytest.fixture
def sig_api(redis_server, ns: str, data_dir: Path, r: redis.Redis) -> Iterator[ApiServer]:
    publish(r, ns, "WHKUSDT")
    publish(r, ns, "SMAUSDT", "sma_crossover")
    server = ApiServer(fast_env(redis_server.url, ns, data_dir, signal_secrets=SECRETS, signal_max_age_s=30,
                                signal_rate_per_min=5000))
    yield server
    server.stop()


def hmac_post(api: ApiServer, symbol: str, body: dict[str, object] | bytes, secret: str = BOT,
              source: str = "bot") -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{api.url}/signals/{symbol}", content=raw, timeout=10,
                      headers={"X-LeviBot-Source": source, "X-LeviBot-Signature": sign(secret, raw),
                               "Content-Type": "application/json"})


def stream(r: redis.Redis, ns: str, symbol: str = "WHKUSDT") -> list[dict[str, str]]:
    return [f for _, f in r.xrange(f"{ns}signals:{symbol}")]  # type: ignore[misc]


def test_signed_fresh_unique_signals_are_taken_and_nothing_else(sig_api: ApiServer, r: redis.Redis, ns: str) -> None:
    now = time.time()
    ok = hmac_post(sig_api, "WHKUSDT", {"target": 0.5, "ts": now, "id": "a1", "expires_in_s": 600})
    assert ok.status_code == 202, ok.text
    assert ok.json()["target"] == "0.5" and float(ok.json()["expires_at"]) == pytest.approx(now + 600, abs=1e-3)
    tv = {"source": "tv", "secret": TV, "position": "short", "size": 0.5, "symbol": "BINANCE:WHKUSDT.P",
          "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "id": "tv-1"}
    assert httpx.post(f"{sig_api.url}/signals/WHKUSDT", json=tv).status_code == 202  # no API token needed
    cases = [  # (what is sent, status, the detail's start)
        (lambda: hmac_post(sig_api, "WHKUSDT", {"target": 1, "ts": now, "id": "a2"}, secret="x" * 40), 401,
         "X-LeviBot-Signature"),
        (lambda: httpx.post(f"{sig_api.url}/signals/WHKUSDT", json={**tv, "secret": "wrong", "id": "tv-2"}), 401,
         "secret: missing or wrong"),
        (lambda: hmac_post(sig_api, "WHKUSDT", {"target": 1, "ts": now}, source="nobody"), 401, "unknown signal"),
        (lambda: hmac_post(sig_api, "WHKUSDT", b"{not json"), 422, "body: not JSON"),
        (lambda: hmac_post(sig_api, "WHKUSDT", b"[1, 2]"), 422, "body: a JSON object"),
        (lambda: hmac_post(sig_api, "WHKUSDT", {"target": 2, "ts": now, "id": "a3"}), 422, "target: "),
        (lambda: hmac_post(sig_api, "WHKUSDT", {"target": 1, "id": "a4"}), 422, "ts: Field required"),
        (lambda: hmac_post(sig_api, "WHKUSDT", {"target": 1, "ts": "yesterday", "id": "a5"}), 422, "ts: "),
        (lambda: hmac_post(sig_api, "WHKUSDT", {"ts": now, "id": "a6"}), 422, "body: give target"),
        (lambda: hmac_post(sig_api, "WHKUSDT", {"target": 1, "ts": now, "oops": 1}), 422, "oops: Extra inputs"),
        (lambda: hmac_post(sig_api, "WHKUSDT", {"target": 1, "ts": now, "symbol": "ETHUSDT"}), 422, "symbol: "),
        (lambda: hmac_post(sig_api, "WHKUSDT", {"target": 1, "ts": now - 120, "id": "a7"}), 409, "ts: "),
        (lambda: hmac_post(sig_api, "WHKUSDT", {"target": 1, "ts": (now + 120) * 1000, "id": "a8"}), 409, "ts: "),
        (lambda: hmac_post(sig_api, "WHKUSDT", {"target": 0.5, "ts": now, "id": "a1"}), 409, "id: a1 from bot"),
        (lambda: hmac_post(sig_api, "SMAUSDT", {"target": 1, "ts": now, "id": "a9"}), 409, "symbol: SMAUSDT trades"),
        (lambda: hmac_post(sig_api, "NOPEUSDT", {"target": 1, "ts": now, "id": "a10"}), 404, "symbol: NOPEUSDT"),
        (lambda: hmac_post(sig_api, "WHKUSDT", b"x" * 20_000), 413, ""),
    ]
    for send, status, detail in cases:
        res = send()
        assert res.status_code == status, (status, res.text)
        assert str(res.json()["detail"]).startswith(detail) and "\n" not in str(res.json()["detail"]), res.text
    body = {"target": 1, "ts": now, "id": "same-body"}
    raw = json.dumps(body).encode()
    assert hmac_post(sig_api, "WHKUSDT", raw).status_code == 202
    assert hmac_post(sig_api, "WHKUSDT", raw).status_code == 409, "a replayed body is refused"
    got = stream(r, ns)
    assert [(g["source"], g["id"], g["target"]) for g in got] == [("bot", "a1", "0.5"), ("tv", "tv-1", "-0.5"),
                                                                  ("bot", "same-body", "1.0")]
    listed = httpx.get(f"{sig_api.url}/signals/WHKUSDT").json()["signals"]
    assert [s["id"] for s in listed] == ["same-body", "tv-1", "a1"], "newest first"


def test_garbage_never_gets_a_500(sig_api: ApiServer, r: redis.Redis, ns: str) -> None:
    rng = random.Random(7)
    now = time.time()
    values: list[object] = [None, True, -1, 0, 1e308, "1e400", "", "x" * 300, [], {}, "NaN", "2024-13-45", -0.0]
    keys = ["target", "ts", "id", "expires_in_s", "expires_at", "position", "size", "source", "secret", "symbol"]
    with httpx.Client(timeout=10) as c:
        for _ in range(300):
            body: dict[str, object] = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, len(keys)))}
            if rng.random() < 0.5:
                body["ts"] = now
            raw = json.dumps(body).encode() if rng.random() < 0.9 else bytes(rng.getrandbits(8) for _ in range(40))
            res = c.post(f"{sig_api.url}/signals/WHKUSDT", content=raw, headers={
                "X-LeviBot-Source": rng.choice(["bot", "tv", "", "zz"]),
                "X-LeviBot-Signature": sign(BOT, raw) if rng.random() < 0.5 else "sha256=00"})
            assert res.status_code in (202, 401, 409, 422), (res.status_code, raw[:200], res.text)
            if res.status_code == 202:
                assert float(res.json()["target"]) in (-1.0, -0.0, 0.0, 1.0) or -1 <= float(res.json()["target"]) <= 1


def test_a_source_over_its_rate_gets_429(redis_server, ns: str, data_dir: Path, r: redis.Redis) -> None:
    publish(r, ns, "WHKUSDT")
    api = ApiServer(fast_env(redis_server.url, ns, data_dir, signal_secrets=SECRETS, signal_rate_per_min=5))
    try:
        codes = [hmac_post(api, "WHKUSDT", {"target": 1, "ts": time.time(), "id": f"r{i}"}).status_code
                 for i in range(8)]
        minute_turned = codes.count(202) > 5  # the minute may turn mid-run: then the count starts again
        assert minute_turned or codes == [202] * 5 + [429] * 3, codes
        assert len(stream(r, ns)) == codes.count(202)
    finally:
        api.stop()


def test_the_sources_setting_is_checked_and_never_echoes_a_secret() -> None:
    assert set(parse_sources(SECRETS)) == {"tv", "bot"}
    for text, msg in (("tv=tradingview", "entry 1: expected name=kind:secret"),
                      ("Tv=hmac:" + "s" * 20, "source name 'Tv'"),
                      ("tv=plain:" + "s" * 20, "kind 'plain'"),
                      ("tv=hmac:short", "shorter than 16"),
                      (f"a=hmac:{'s' * 20},a=hmac:{'t' * 20}", "entry 2: source 'a' named twice")):
        with pytest.raises(ValueError, match=msg) as info:
            parse_sources(text)
        assert "s" * 20 not in str(info.value)
    assert "secret" not in repr(parse_sources(SECRETS)["bot"]) and BOT not in repr(parse_sources(SECRETS))
