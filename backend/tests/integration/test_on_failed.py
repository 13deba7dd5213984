"""A failed engine's position: closed (on_failed: flatten, the default) or held and shown (hold)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from backend.tests.conftest import FAST_CONFIG, ManagerProc, engine_pids, wait_for
from backend.tests.integration.helpers import events, journal_entries, journal_position, running_pid, state


def kill_until_failed(r: redis.Redis, ns: str, symbol: str) -> None:
    """Six external kills of healthy runs in a row (README: failed after 5 restarts); the last
    one while the engine holds a position."""
    for i in range(6):
        pid = wait_for(lambda: running_pid(r, ns, symbol), 20, what="engine running")
        if i == 5:
            wait_for(lambda: float(state(r, ns, symbol).get("position") or 0) != 0, 20, what="a position")
            pid = running_pid(r, ns, symbol)
        os.kill(int(pid), signal.SIGKILL)  # type: ignore[arg-type]
        wait_for(lambda p=pid: state(r, ns, symbol).get("pid") != str(p), 10, what="death seen")
    wait_for(lambda: state(r, ns, symbol).get("status") == "failed", 20, what="failed")


@pytest.mark.parametrize("policy", ["flatten", "hold"])
def test_failed_engine_position_is_closed_or_held(
    policy: str, start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str, data_dir: Path,
    engine_config: Path,
) -> None:
    engine_config.write_text(FAST_CONFIG + f"  on_failed: {policy}\n")
    start_manager(["BTCUSDT"])
    kill_until_failed(r, ns, "BTCUSDT")
    (failed,) = events(r, ns, "failed", "BTCUSDT")
    assert failed["on_failed"] == policy and failed["position"] not in ("0", "unknown"), failed
    if policy == "flatten":
        wait_for(lambda: state(r, ns, "BTCUSDT").get("on_failed") == "flattened", 20, what="flattened")
        last = [e for e in journal_entries(data_dir, "BTCUSDT") if e["type"] == "fill"][-1]
        assert last["reason"] == "risk:engine_failed"
        assert journal_position(data_dir, "BTCUSDT") == 0
        assert float(state(r, ns, "BTCUSDT")["position"]) == 0 and state(r, ns, "BTCUSDT")["status"] == "failed"
        assert events(r, ns, "flattened", "BTCUSDT")
    else:
        wait_for(lambda: state(r, ns, "BTCUSDT").get("on_failed") == "holding", 5, what="holding shown")
        assert journal_position(data_dir, "BTCUSDT") != 0
        assert not any(e.get("reason") == "risk:engine_failed" for e in journal_entries(data_dir, "BTCUSDT"))
    assert engine_pids("BTCUSDT", data_dir) == [], "a failed engine stays down"
