"""Redis high availability: a real primary, replica and three sentinels on loopback; ``kill -9`` the primary.

A pool manager (journal entries to Redis, ``WAIT 1``), its engines, the API and an RQ worker all reach Redis
through ``LEVIBOT_REDIS_URL=redis+sentinel://...``. After the sentinels promote the replica: engines never
stopped trading, their heartbeats, the API and the worker are back on the new primary, and the journal
stream there holds every entry of every engine's journal (nothing acknowledged was lost; what was not
yet acknowledged was sent again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from backend.scripts.bench_failover import journal, stream_entries
from backend.src.core.redis_launcher import free_port
from backend.src.core.redis_url import connect
from backend.tests.conftest import ManagerProc
from backend.tests.integration.helpers import fills
from backend.tests.sentinel_cluster import SentinelCluster

pytestmark = pytest.mark.slow
SYMS = ["BTCUSDT", "ETHUSDT"]


def eventually(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = cond()
            if value:
                return value
        except (redis.RedisError, httpx.HTTPError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def test_everything_follows_a_sentinel_failover(tmp_path: Path, start_manager: Callable[..., ManagerProc], ns: str,
                                                data_dir: Path, api_token: str) -> None:
    cluster = SentinelCluster(tmp_path / "ha").start()
    port = free_port()
    m: ManagerProc | None = None
    try:
        r = connect(cluster.url, timeout=2.0)
        m = start_manager(SYMS, "--pool", "ha", url=cluster.url, api_enabled="true", api_port=port, workers=1,
                          api_token=api_token)

        def up() -> bool:
            body = httpx.get(f"http://127.0.0.1:{port}/engines/status", timeout=3).json()
            return sum(1 for e in body["engines"] if e["up"]) == len(SYMS)

        eventually(up, 90, "both engines up, seen through the API")
        eventually(lambda: all(r.xlen(f"{ns}journal:{s}") >= 3 for s in SYMS), 30, "journal entries in Redis")
        eventually(lambda: list(r.scan_iter(f"{ns}rqalive:*")), 60, "the RQ worker alive")
        before = {s: len(fills(data_dir, s)) for s in SYMS}

        took = cluster.kill_primary_and_wait_failover()
        failed_over_at = time.time()
        assert took < 30
        # heartbeats written to the new primary, by the same engines (nobody was restarted)
        eventually(lambda: all(float(str(r.get(f"{ns}hb:{s}")).split(":")[2]) > failed_over_at for s in SYMS),
                   30, "heartbeats on the new primary")
        assert int(str(r.info("server")["tcp_port"])) == cluster.replica.port
        eventually(up, 30, "the API answering from the new primary")
        r.delete(*r.keys(f"{ns}rqalive:*") or ["-"], *r.keys(f"{ns}manager:*") or ["-"])
        eventually(lambda: list(r.scan_iter(f"{ns}rqalive:*")), 30, "the RQ worker on the new primary")
        eventually(lambda: list(r.scan_iter(f"{ns}manager:*")), 30, "the manager's presence on the new primary")
        # a dashboard backtest: the API queues it on the new primary, the worker runs it, the result lands there
        spec = {"symbols": ["BTCUSDT"], "start": "2026-01-01", "end": "2026-01-03"}
        res = httpx.post(f"http://127.0.0.1:{port}/backtests", json=spec,
                         headers={"Authorization": f"Bearer {api_token}"}, timeout=10)
        assert res.status_code == 202, (res.status_code, res.text)
        run_id = res.json()["id"]
        run = eventually(lambda: (x := httpx.get(f"http://127.0.0.1:{port}/runs/{run_id}", timeout=5).json())
                         ["status"] in ("done", "error") and x, 90, "the backtest run")
        assert run["status"] == "done", run
        eventually(lambda: all(len(fills(data_dir, s)) > before[s] for s in SYMS), 30, "trading on")

        cluster.primary.start(cluster.password)  # the old primary returns; the sentinels make it a replica
        cluster.wait_replica_synced(cluster.replica.port)
        for s in SYMS:  # every entry the engines wrote is in the stream of the new primary, once
            eventually(lambda s=s: stream_entries(r, ns, s)[: len(journal(data_dir, s))] == journal(data_dir, s)
                       and journal(data_dir, s), 30, f"{s}: the stream holds the whole journal")
            seqs = [int(e["seq"]) for e in stream_entries(r, ns, s)]
            assert seqs == list(range(1, len(seqs) + 1))
        # while the new primary had no replica, entries waited for one (WAIT 1) and were sent again after
        logs = "".join(p.read_text() for p in (data_dir / "logs").glob("engine-*.jsonl"))
        assert "not yet on 1 replica(s)" in logs, [x for x in logs.splitlines() if "WARN" in x or "ERROR" in x]
        eventually(lambda: "journal stream caught up" in "".join(
            p.read_text() for p in (data_dir / "logs").glob("engine-*.jsonl")), 30, "the engines caught up")
        assert m.stop() == 0
    finally:
        if m is not None:
            m.stop()
        cluster.stop()
