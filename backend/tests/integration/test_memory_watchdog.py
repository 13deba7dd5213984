"""The memory watchdog on real engines: an engine above ``max_rss_mb`` is restarted gracefully (SIGTERM,
flushed and journaled; the new process rebuilds its position from the journal), reported as
``restarted: memory``, and never counted as a crash."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import redis

from backend.tests.conftest import ManagerProc, wait_for
from backend.tests.integration.helpers import events, journal_position, running_pid, state

Start = Callable[..., ManagerProc]


def test_an_engine_above_its_memory_limit_restarts_with_its_position(start_manager: Start, r: redis.Redis,
                                                                     ns: str, data_dir: Path) -> None:
    # Every engine's resident memory (~50 MB) is above 20 MB: the limit is crossed as soon as it runs.
    m = start_manager(["BTCUSDT"], engine_max_rss_mb=20)
    first = wait_for(lambda: running_pid(r, ns, "BTCUSDT"), 60, what="BTCUSDT running")
    wait_for(lambda: events(r, ns, "restarted"), 20, what="a memory restart")
    second = wait_for(lambda: (p := running_pid(r, ns, "BTCUSDT")) != first and p, 30, what="the new engine")
    assert second and second != first
    (ev, *_) = events(r, ns, "restarted")
    assert ev["reason"] == "memory" and "max_rss_mb 20" in ev["detail"]
    assert events(r, ns, "crashed") == [] and events(r, ns, "hung") == []
    st = state(r, ns, "BTCUSDT")
    assert st.get("restarts", "0") == "0" and int(st["memory_restarts"]) >= 1
    # what the new process reports is what its journal holds (it rebuilt its position from it)
    wait_for(lambda: abs(float(state(r, ns, "BTCUSDT").get("position") or 0) - journal_position(data_dir, "BTCUSDT"))
             < 1e-9, 10, what="position from the journal")
    assert m.stop() == 0
