"""``/history/...`` over real HTTP: a manager with its API and analytics process, engines trading."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import httpx
import redis

from backend.tests.conftest import wait_for
from backend.tests.integration.helpers import running_pid

SYMS = ["BTCUSDT", "ETHUSDT"]


def test_history_endpoints(manager_api: Callable[..., str], r: redis.Redis, ns: str) -> None:
    url = manager_api(SYMS, analytics_enabled="true")
    get = lambda path, **params: httpx.get(url + path, params=params, timeout=10)  # noqa: E731
    wait_for(lambda: get("/history/fills").status_code == 200 and get("/history/fills").json()["total"] >= 6, 30,
             what="fills shipped")
    first, second = get("/history/fills", limit=3).json(), get("/history/fills", limit=3, offset=3).json()
    assert len(first["fills"]) == 3 and first["total"] >= 6 and first["fills"] != second["fills"]
    assert {f["symbol"] for f in get("/history/fills", symbol="ETHUSDT", limit=50).json()["fills"]} == {"ETHUSDT"}
    pnl = get("/history/pnl").json()
    assert {row["symbol"] for row in pnl["rows"]} == set(SYMS) and pnl["by"] == "day"
    assert get("/history/pnl", by="week", symbol="BTCUSDT").status_code == 200
    assert get("/history/equity", symbol="BTCUSDT").json()["symbol"] == "BTCUSDT"
    bins = get("/history/calibration", bins=5).json()["bins"]
    assert sum(b["n"] for b in bins) > 0 and all(0 <= b["realised"] <= 1 for b in bins)
    pid = running_pid(r, ns, "ETHUSDT")
    assert pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: any(row["symbol"] == "ETHUSDT" and row["crashed"] >= 1
                         for row in get("/history/crashes").json()["rows"]), 20, what="the crash in the store")
    # bad ranges and inputs: 422 naming the field, never a 500
    bad = get("/history/pnl", start="2026-11-30", end="2026-11-01")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "end"]
    long = get("/history/fills", start="2025-01-01", end="2026-11-30")
    assert long.status_code == 422 and long.json()["detail"][0]["loc"] == ["query", "start"]
    early = get("/history/pnl", end="0001-01-01")  # found by the fuzzer: a default start before year 1 was a 500
    assert early.status_code == 422 and early.json()["detail"][0]["loc"] == ["query", "end"]
    for path, params in (("/history/fills", {"limit": 0}), ("/history/pnl", {"symbol": "btc'--"}),
                         ("/history/equity", {}), ("/history/pnl", {"start": "2026-13-01"}),
                         ("/history/crashes", {"start": "9999-12-31"}),
                         ("/history/calibration", {"end": "1969-12-31"})):
        assert get(path, **params).status_code == 422, (path, params)
