"""A failed liquidation is retried; only the last attempt alerts and shows flatten_failed."""

from __future__ import annotations

import redis

from backend.src.core.keys import Keys
from backend.src.supervisor.failed import report_liquidation
from backend.src.supervisor.state_store import StateStore


def test_liquidation_retries_then_alerts(r: redis.Redis, ns: str) -> None:
    store = StateStore(r, Keys(ns))
    store.write("BTCUSDT", position="0.5")
    assert report_liquidation(store, "BTCUSDT", 1, "timeout", final=False) is False
    assert r.hget(f"{ns}engine:BTCUSDT", "on_failed") is None, "no verdict before the last attempt"
    assert report_liquidation(store, "BTCUSDT", 1, "timeout", final=True) is True
    assert r.hget(f"{ns}engine:BTCUSDT", "on_failed") == "flatten_failed"
    store.write("BTCUSDT", position="0")
    assert report_liquidation(store, "BTCUSDT", 0, "", final=False) is True
    assert r.hget(f"{ns}engine:BTCUSDT", "on_failed") == "flattened"
