"""The outside feeds an engine's strategy sees: fresh values from the workers' caches, nothing otherwise."""

from __future__ import annotations

import json
import time

import redis

from backend.src.core.keys import Keys
from backend.src.trading.feeds import FeedReader, OnchainReader, SentimentReader


def test_onchain_and_funding_only_while_fresh(r: redis.Redis, ns: str) -> None:
    keys, now = Keys(ns), time.time()
    read = OnchainReader(r, keys, "ETHUSDT", max_age_s=600, clock=lambda: now)
    assert read() == {}
    # what the on-chain job writes (OnchainFetcher.get): JSON values and a fetch stamp per source
    r.hset(keys.onchain("ETHUSDT"), mapping={k: json.dumps(v) for k, v in {
        "active_addresses_24h": 1200, "exchange_inflow_usd": 5e6, "exchange_outflow_usd": 7e6,
        "whale_transactions_count": 9, "dune_at": now - 60, "funding_rate": 0.0001, "funding_at": now - 900}.items()})
    assert read() == {"onchain_netflow": -2e6, "onchain_active_addresses": 1200.0, "onchain_whale_transactions": 9.0}
    r.hset(keys.onchain("ETHUSDT"), "funding_at", json.dumps(now - 10))
    assert read()["funding_rate"] == 0.0001
    r.hset(keys.onchain("ETHUSDT"), "exchange_inflow_usd", json.dumps(None))
    assert "onchain_netflow" not in read(), "a missing side is unknown, not zero"
    r.hset(keys.onchain("ETHUSDT"), "dune_at", "garbage")
    assert read() == {}
    down = OnchainReader(redis.Redis(port=1, socket_connect_timeout=0.2), keys, "ETHUSDT", 600)
    assert down() == {}


def test_feeds_merge(r: redis.Redis, ns: str) -> None:
    keys, now = Keys(ns), time.time()
    r.hset(keys.sentiment("BTCUSDT"), mapping={"mean": 0.5, "count": 3, "decayed": 0.4, "updated_at": now})
    r.hset(keys.onchain("BTCUSDT"), mapping={"funding_rate": "0.0002", "funding_at": json.dumps(now)})
    feeds = FeedReader(SentimentReader(r, keys, "BTCUSDT", 900), OnchainReader(r, keys, "BTCUSDT", 900))
    assert feeds() == {"news_score": 0.4, "funding_rate": 0.0002}
