"""Liveness verdicts on a fake runtime: an engine above its memory limit is restarted gracefully (not a
crash), a paused manager's engine whose lease another manager took is stopped as fenced off (not hung),
and an engine that stopped beating is still hung."""

from __future__ import annotations

import logging
import signal

import pytest
import redis

from backend.src.core.config import SymbolConfig
from backend.src.core.keys import Keys
from backend.src.core.settings import Settings
from backend.src.core.states import EngineState as S
from backend.src.supervisor.watchdog import Watchdog
from backend.tests.fakes.runtime import FakeProc, FakeRuntime
from backend.tests.src.supervisor.test_watchdog_policies import Driver, make

MB = 1024 * 1024


def running(settings: Settings, r: redis.Redis, **overrides: object) -> tuple[Watchdog, FakeRuntime, Driver, str,
                                                                            FakeProc]:
    """One engine started and running on a fake runtime: the watchdog, runtime, driver, symbol and process."""
    w, rt = make(settings, r, **overrides)
    sym = next(iter(w.records))
    d = Driver(w, rt, r)
    w.start_all()
    assert d.run(2, d.all_running)
    proc = rt.live(sym)
    assert proc is not None
    return w, rt, d, sym, proc


def events(r: redis.Redis, ns: str, kind: str) -> list[dict[str, str]]:
    return [f for _, f in r.xrange(Keys(ns).events) if f["type"] == kind]  # type: ignore[misc]


def test_an_engine_above_its_memory_limit_is_restarted_gracefully(settings: Settings, r: redis.Redis,
                                                                  ns: str) -> None:
    w, rt, d, sym, first = running(settings, r, engine_max_rss_mb=300.0)
    rt.memory[first.pid] = 200 * MB
    assert d.run(3) and first.alive(), "under the limit: left alone"
    rt.memory[first.pid] = 350 * MB  # it grew
    assert d.run(3, lambda: not first.alive())
    assert (sym, signal.SIGTERM) in rt.signals and (sym, signal.SIGKILL) not in rt.signals, "a graceful stop"
    assert d.run(3, d.all_running)
    rec = w.records[sym]
    assert rt.live(sym) is not first and rec.memory_restarts == 1
    assert rec.failures == 0 and rec.restarts == 0, "not a crash: nothing counts toward failed"
    (ev,) = events(r, ns, "restarted")
    assert ev["reason"] == "memory" and "350 MB > max_rss_mb 300" in ev["detail"]
    assert events(r, ns, "crashed") == []
    assert r.hget(Keys(ns).state(sym), "memory_restarts") == "1"


def test_the_engine_config_overrides_the_managers_limit(settings: Settings, r: redis.Redis) -> None:
    w, _ = make(settings, r, engine_max_rss_mb=300.0)
    rec = next(iter(w.records.values()))
    assert w.liveness.max_rss_mb(rec) == 300.0
    rec.spec = rec.spec.__class__(**{**rec.spec.__dict__, "config": SymbolConfig(max_rss_mb=1000)})
    assert w.liveness.max_rss_mb(rec) == 1000.0
    w2, _ = make(settings, r)
    assert w2.liveness.max_rss_mb(next(iter(w2.records.values()))) is None, "off by default"


def test_a_paused_managers_taken_over_engine_is_fenced_not_hung(settings: Settings, r: redis.Redis, ns: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    w, rt, d, sym, engine = running(settings, r, heartbeat_timeout_s=2.0)
    d.frozen.add(engine.pid)  # the whole manager tree was stopped (SIGSTOP) ...
    r.set(Keys(ns).lease(sym), "7|other-host:/data|4242")  # ... and another pool member took the symbol over
    with caplog.at_level(logging.WARNING):
        assert d.run(5, lambda: w.records[sym].state is S.STOPPED)
    assert not engine.alive()
    assert events(r, ns, "hung") == [] and events(r, ns, "crashed") == []
    assert w.records[sym].state is S.STOPPED, "not restarted: the symbol is the other manager's now"
    lines = [x for x in caplog.records if x.levelno >= logging.WARNING and sym in x.getMessage()]
    assert len(lines) == 1 and "other-host" in lines[0].getMessage() and lines[0].levelno == logging.WARNING


def test_an_engine_that_ignores_its_sigterm_is_killed_after_the_stop_timeout(settings: Settings,
                                                                             r: redis.Redis) -> None:
    """A stop that does not wait (a pool's hand-over, a removal) still ends: SIGKILL after stop_timeout_s."""
    w, rt, d, sym, engine = running(settings, r, stop_timeout_s=3.0)
    rt.exit_on_term = False  # it never acts on the SIGTERM (lost, or stuck)
    asked = rt.now
    w.stop(sym, wait=False)
    assert d.run(6, lambda: not engine.alive())
    assert 3.0 <= rt.now - asked <= 3.5 and (sym, signal.SIGKILL) in rt.signals
    assert d.run(1, lambda: w.records[sym].state is S.STOPPED)


def test_a_sigterm_before_the_engines_handler_is_kept_for_it() -> None:
    from backend.src.engine import forkserver_init  # noqa: PLC0415

    before = list(forkserver_init.PENDING)
    try:
        forkserver_init._on_sigterm(signal.SIGTERM, None)  # in a child: its pid is not the server's
        assert forkserver_init.PENDING == [*before, signal.SIGTERM]
    finally:
        forkserver_init.PENDING[:] = before
