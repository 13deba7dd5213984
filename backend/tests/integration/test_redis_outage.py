"""Redis goes away for a while: engines keep trading on paper, nobody is restarted."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.redis_url import connect
from backend.tests.conftest import ManagerProc, engine_pids, wait_for
from backend.tests.integration.helpers import events, fills, state, wait_running
from backend.tests.machine import MachineLock

SYMS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.mark.parametrize("outage_s", [5, pytest.param(60, marks=pytest.mark.slow)])
def test_engines_ride_out_a_redis_outage(
    outage_s: int, tmp_path: Path, start_manager: Callable[..., ManagerProc], ns: str, data_dir: Path,
    machine: MachineLock,
) -> None:
    server = EmbeddedRedis(tmp_path / "outage-redis").start()
    r = connect(server.url)
    try:
        m = start_manager(SYMS, url=server.url)
        pids = wait_running(r, ns, SYMS)
        wait_for(lambda: all(fills(data_dir, s) for s in SYMS), 20, what="fills before the outage")
        before = sum(len(fills(data_dir, s)) for s in SYMS)

        server.stop()  # SIGTERM: Redis writes its AOF and exits
        time.sleep(outage_s)
        during = sum(len(fills(data_dir, s)) for s in SYMS)
        assert during > before, "engines kept trading on paper while Redis was down"
        assert {s: engine_pids(s, data_dir) for s in SYMS} == {s: [pids[s]] for s in SYMS}

        with machine.alone():  # a real-time bound: measured with the machine to ourselves
            server.start()
            back = time.time()

            def fresh_heartbeats() -> bool:
                for s in SYMS:
                    v = r.get(f"{ns}hb:{s}")
                    if not v:
                        return False
                    pid, _, ts = str(v).split(":")
                    if int(pid) != pids[s] or float(ts) < back:
                        return False
                return True

            wait_for(fresh_heartbeats, 2.0, interval=0.01, what="heartbeats within 2 s of Redis returning")
            time.sleep(3.0)  # longer than the hang timeout: the watchdog must not blame the engines
            for s in SYMS:
                st = state(r, ns, s)
                assert st["status"] == "running" and int(st["pid"]) == pids[s] and st.get("restarts", "0") == "0"
            assert not events(r, ns, "hung") and not events(r, ns, "crashed")
        assert m.proc.poll() is None
        after = sum(len(fills(data_dir, s)) for s in SYMS)
        wait_for(lambda: sum(len(fills(data_dir, s)) for s in SYMS) > after, 10, what="trading after the outage")
    finally:
        r.close()
        server.stop()
