"""The Watchdog class in-process: start/stop/restart one symbol, health_check reasons."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import psutil
import pytest
import redis

from backend.src.core.config import SourceSpec, StrategyConfig, SymbolConfig
from backend.src.core.errors import UsageError
from backend.src.core.settings import Settings
from backend.src.core.states import EngineState as S
from backend.src.supervisor.procs import SystemRuntime, is_engine
from backend.src.supervisor.watchdog import Watchdog

SYMS = ["BTCUSDT", "ETHUSDT"]


@pytest.fixture
def manager(settings: Settings, r: redis.Redis) -> Iterator[Watchdog]:
    cfg = SymbolConfig(strategy=StrategyConfig(fast=2, slow=5))
    m = Watchdog(settings, r, dict.fromkeys(SYMS, cfg), dict.fromkeys(SYMS, SourceSpec("synthetic")),
                runtime=SystemRuntime(settings.data_dir))
    yield m
    m.shutdown()


def test_start_all_stop_start_restart(manager: Watchdog, r: redis.Redis, ns: str) -> None:
    assert manager.start_all(wait_s=30)
    health = manager.health_check()
    assert all(h["alive"] and h["reason"] == "" for h in health.values())
    pids = {s: health[s]["pid"] for s in SYMS}
    assert all(is_engine(int(p), s) for s, p in pids.items())  # type: ignore[call-overload]

    manager.stop("BTCUSDT")
    h = manager.health_check()["BTCUSDT"]
    assert not h["alive"] and h["reason"] == "stopped by operator" and h["status"] == "stopped"
    assert r.hget(f"{ns}engine:BTCUSDT", "status") == "stopped"
    manager.pump_until(lambda: False, 0.5)
    assert manager.records["BTCUSDT"].proc is None, "a stopped engine is not restarted"

    manager.start("BTCUSDT")
    assert manager.pump_until(lambda: manager.records["BTCUSDT"].state is S.RUNNING, 20)
    old = manager.records["ETHUSDT"].proc
    manager.restart_async("ETHUSDT")  # what a restart command runs
    assert manager.pump_until(lambda: manager.records["ETHUSDT"].state is S.RUNNING, 20)
    new = manager.records["ETHUSDT"].proc
    assert old is not None and new is not None and new.pid != old.pid


def test_health_check_says_why(manager: Watchdog) -> None:
    assert manager.start_all(wait_s=30)
    rec = manager.records["BTCUSDT"]
    assert rec.proc is not None
    os.kill(rec.proc.pid, signal.SIGKILL)
    manager.pump_until(lambda: rec.state is not S.RUNNING, 5)
    reason = str(manager.health_check()["BTCUSDT"]["reason"])
    assert "SIGKILL" in reason or "heartbeat" in reason
    assert manager.pump_until(lambda: rec.state is S.RUNNING, 10)
    assert rec.restarts == 1 and rec.failures == 1


def test_unknown_symbol(manager: Watchdog) -> None:
    with pytest.raises(UsageError, match="DOGEUSDT is not managed here"):
        manager.stop("DOGEUSDT")


def test_shutdown_right_after_an_unseen_engine_death_finishes_cleanly(manager: Watchdog, r: redis.Redis,
                                                                     ns: str) -> None:
    """kill -STOP manager; kill -9 engine; kill -TERM manager; kill -CONT: no InvalidTransition."""
    assert manager.start_all(wait_s=30)
    rec = manager.records["ETHUSDT"]
    assert rec.proc is not None
    os.kill(rec.proc.pid, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(rec.proc.pid).wait(5)
    manager.shutdown()  # the death is seen only inside shutdown
    assert all(x.state is S.STOPPED and x.proc is None for x in manager.records.values())
    assert r.hget(f"{ns}engine:ETHUSDT", "status") == "stopped"
    assert any(f["type"] == "crashed" and f["symbol"] == "ETHUSDT" for _, f in r.xrange(f"{ns}events"))


def test_first_start_is_staggered(settings: Settings, r: redis.Redis) -> None:
    """At most max_concurrent_starts engines are spawned and not yet running at any moment."""
    syms = [f"S{i:02d}USDT" for i in range(8)]
    cfg = SymbolConfig(strategy=StrategyConfig(fast=2, slow=5))
    m = Watchdog(settings.model_copy(update={"max_concurrent_starts": 2}), r, dict.fromkeys(syms, cfg),
                dict.fromkeys(syms, SourceSpec("synthetic")), runtime=SystemRuntime(settings.data_dir))
    peak = [0]

    def all_running() -> bool:
        starting = sum(1 for x in m.records.values() if x.proc is not None and x.state is S.STARTING)
        peak[0] = max(peak[0], starting)
        return all(x.state is S.RUNNING for x in m.records.values())

    try:
        m.start_all()
        assert sum(1 for x in m.records.values() if x.proc is not None) == 2, "two spawned, six queued"
        assert "queued" in str(m.health_check()[syms[-1]]["reason"])
        assert m.pump_until(all_running, 60)
        assert peak[0] == 2
    finally:
        m.shutdown()


def test_shutdown_cancels_queued_starts(settings: Settings, r: redis.Redis, ns: str) -> None:
    syms = [f"Q{i:02d}USDT" for i in range(4)]
    m = Watchdog(settings.model_copy(update={"max_concurrent_starts": 1}), r, dict.fromkeys(syms, SymbolConfig()),
                dict.fromkeys(syms, SourceSpec("synthetic")), runtime=SystemRuntime(settings.data_dir))
    m.start_all()
    m.shutdown()
    assert all(x.state is S.STOPPED and x.proc is None for x in m.records.values())
    assert {r.hget(f"{ns}engine:{s}", "status") for s in syms} == {"stopped"}
