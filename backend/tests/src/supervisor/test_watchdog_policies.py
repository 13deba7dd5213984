"""The watchdog's policies on a fake runtime: no processes, no sleeping, a virtual clock.

Staggered (mass) starts, the backoff sequence and its jitter bounds, the crash count that
only a stable run resets, ``failed`` after exactly ``max_restarts``, exit code 3 → ``failed``
at once, and the identity checks (heartbeat of another pid, hung engine, a previous
manager's engine, a foreign lease). The real-process suite (test_watchdog.py and
integration/) stays the end-to-end layer.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable

import pytest
import redis

from backend.src.core.config import SourceSpec, SymbolConfig
from backend.src.core.errors import EXIT_FATAL, UsageError
from backend.src.core.keys import Keys
from backend.src.core.lease import Lease
from backend.src.core.settings import Settings
from backend.src.core.states import EngineState as S
from backend.src.supervisor.reconcile import ORPHAN_GRACE_S
from backend.src.supervisor.watchdog import Watchdog
from backend.tests.fakes.runtime import FakeProc, FakeRuntime

HOLD = SymbolConfig(on_failed="hold")  # no liquidation process after a failure: these tests count spawns


def make(settings: Settings, r: redis.Redis, n: int = 1, **overrides: object) -> tuple[Watchdog, FakeRuntime]:
    rt = FakeRuntime()
    syms = [f"F{i:02d}USDT" for i in range(n)]
    s = settings.model_copy(update=overrides)
    w = Watchdog(s, r, dict.fromkeys(syms, HOLD), dict.fromkeys(syms, SourceSpec("synthetic")),
                 runtime=rt, rng=random.Random(7), owner="fake-owner")
    return w, rt


class Driver:
    """Steps the watchdog in virtual time; engines come up ``boot_s`` after their spawn and
    heartbeat while alive (unless frozen)."""

    def __init__(self, w: Watchdog, rt: FakeRuntime, r: redis.Redis, boot_s: float = 0.2) -> None:
        self.w, self.rt, self.r, self.boot_s = w, rt, r, boot_s
        self.up: set[int] = set()
        self.frozen: set[int] = set()
        self.peak_starting = 0

    def run(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        end = self.rt.now + seconds
        while self.rt.now < end:
            self.w.step(0.05)
            pipe = self.r.pipeline(transaction=False)
            for p in self.rt.procs:
                if not p.alive() or p.pid in self.frozen:
                    continue
                if p.pid in self.up or self.rt.now - p.spawned_at >= self.boot_s:
                    self.up.add(p.pid)
                    pipe.set(self.w.keys.heartbeat(p.symbol), f"{p.pid}:1:{self.rt.time():.3f}")
                    pipe.hset(self.w.keys.state(p.symbol), mapping={"pid": str(p.pid), "status": "running"})
            pipe.execute()
            starting = sum(1 for p in self.rt.procs if p.alive() and p.pid not in self.up)
            self.peak_starting = max(self.peak_starting, starting)
            if until is not None and until():
                return True
        return until is None

    def all_running(self) -> bool:
        return all(rec.state is S.RUNNING for rec in self.w.records.values())


def spawn_times(rt: FakeRuntime, symbol: str) -> list[float]:
    return [p.spawned_at for p in rt.procs if p.symbol == symbol]


def test_mass_restart_never_starts_more_than_max_concurrent(settings: Settings, r: redis.Redis) -> None:
    w, rt = make(settings, r, n=12, max_concurrent_starts=4)
    d = Driver(w, rt, r, boot_s=0.5)
    w.start_all()
    assert sum(1 for p in rt.procs if p.alive()) == 4, "first start: four spawned, eight queued"
    assert d.run(30, d.all_running)
    assert d.peak_starting == 4
    for sym in w.records:  # all twelve die at once
        rt.crash(sym, code=-signal.SIGKILL)
    d.peak_starting = 0
    assert d.run(30, lambda: d.all_running() and len(rt.procs) == 24)
    assert d.peak_starting == 4, "never more than max_concurrent_starts starting at once"
    assert {rec.restarts for rec in w.records.values()} == {1}


def test_backoff_sequence_stays_within_jitter_bounds(settings: Settings, r: redis.Redis) -> None:
    w, rt = make(settings, r, max_restarts=5, backoff_base_s=0.5, backoff_cap_s=3.0, backoff_jitter=0.2,
                 stable_after_s=600)
    sym = next(iter(w.records))
    d = Driver(w, rt, r, boot_s=0.1)
    w.start_all()
    delays, scheduled = [], []
    for _ in range(5):
        assert d.run(5, d.all_running)
        crashed_at = rt.now
        rt.crash(sym)
        n = len(rt.procs)
        assert d.run(10, lambda n=n: len(rt.procs) > n)  # type: ignore[misc]
        delays.append(rt.procs[-1].spawned_at - crashed_at)
        scheduled.append(float(r.hget(w.keys.state(sym), "next_restart_in_s") or "nan"))
    nominal = [0.0, 0.5, 1.0, 2.0, 3.0]  # immediate, then doubling from base_s up to cap_s
    for got, want in zip(delays, nominal, strict=True):  # measured in 0.05 s loop steps
        assert want * 0.8 - 0.06 <= got <= want * 1.2 + 0.06, (delays, nominal)
    for got, want in zip(scheduled, nominal, strict=True):
        assert want * 0.8 <= got <= want * 1.2, (scheduled, nominal)
    assert all(abs(got - want) > 0.001 for got, want in zip(scheduled[1:], nominal[1:], strict=True)), \
        "jitter applied to every backoff (engines that died together do not come back in lockstep)"


def test_crash_count_resets_only_after_a_stable_run(settings: Settings, r: redis.Redis) -> None:
    w, rt = make(settings, r, stable_after_s=10.0, backoff_base_s=1.0, backoff_jitter=0.0)
    sym = next(iter(w.records))
    rec = w.records[sym]
    d = Driver(w, rt, r, boot_s=0.1)
    w.start_all()
    assert d.run(2, d.all_running)
    rt.crash(sym)
    assert d.run(2, d.all_running) and rec.failures == 1
    d.run(9.0)  # running, but not stable yet
    assert rec.failures == 1
    rt.crash(sym)
    assert d.run(5, d.all_running) and rec.failures == 2, "a short run does not forgive the crash"
    d.run(10.5)
    assert rec.failures == 0, "a stable run does"
    crashed_at = rt.now
    rt.crash(sym)
    assert d.run(2, lambda: len(rt.procs) == 4)
    assert rt.procs[-1].spawned_at - crashed_at <= 0.06, "counted as a first crash again: immediate restart"


def test_failed_after_exactly_max_restarts(settings: Settings, r: redis.Redis, ns: str) -> None:
    w, rt = make(settings, r, max_restarts=5, backoff_base_s=0.1, backoff_cap_s=0.2, stable_after_s=600)
    sym = next(iter(w.records))
    d = Driver(w, rt, r, boot_s=0.05)
    w.start_all()
    for _ in range(6):
        assert d.run(5, lambda: rt.live(sym) is not None and w.records[sym].state is S.RUNNING)
        rt.crash(sym)
    assert d.run(5, lambda: w.records[sym].state is S.FAILED)
    d.run(5)
    assert len(rt.procs) == 6, "one start and exactly five restarts"
    assert w.records[sym].restarts == 5
    assert "6 crashes in a row" in w.records[sym].last_error
    events = [f for _, f in r.xrange(Keys(ns).events) if f.get("symbol") == sym]
    assert [e["type"] for e in events].count("crashed") == 6 and events[-1]["type"] == "failed"


def test_exit_code_3_fails_at_once(settings: Settings, r: redis.Redis) -> None:
    w, rt = make(settings, r)
    sym = next(iter(w.records))
    d = Driver(w, rt, r)
    w.start_all()
    assert d.run(2, d.all_running)
    rt.notes[sym] = "config: bad market"
    rt.crash(sym, code=EXIT_FATAL)
    d.run(3)
    assert w.records[sym].state is S.FAILED and len(rt.procs) == 1
    assert w.records[sym].last_error == "exit code 3: config: bad market"


def test_a_heartbeat_of_another_pid_does_not_count(settings: Settings, r: redis.Redis) -> None:
    w, rt = make(settings, r, start_timeout_s=3.0)
    sym = next(iter(w.records))
    d = Driver(w, rt, r)
    w.start_all()
    first = rt.live(sym)
    assert first is not None
    d.frozen.add(first.pid)  # it never beats; a stale beat of an older process is in Redis
    r.set(w.keys.heartbeat(sym), f"{first.pid - 1}:1:{rt.time():.3f}")
    d.run(2.5)
    assert w.records[sym].state is S.STARTING, "a stranger's heartbeat is not this engine's"
    d.run(1.0)
    assert (sym, signal.SIGKILL) in rt.signals, "no heartbeat within start_timeout_s: killed"
    assert d.run(3, d.all_running) and len(rt.procs) == 2


def test_hung_engine_is_killed_with_a_note_and_restarted(settings: Settings, r: redis.Redis, ns: str) -> None:
    w, rt = make(settings, r, heartbeat_timeout_s=2.0)
    sym = next(iter(w.records))
    d = Driver(w, rt, r)
    w.start_all()
    assert d.run(2, d.all_running)
    hung: FakeProc | None = rt.live(sym)
    assert hung is not None
    d.frozen.add(hung.pid)
    frozen_at = rt.now
    assert d.run(5, lambda: not hung.alive())
    assert 2.0 <= rt.now - frozen_at <= 2.5
    assert d.run(3, d.all_running)
    assert w.records[sym].last_error.startswith("killed by SIGKILL: hung: no heartbeat for")
    assert any(f["type"] == "hung" for _, f in r.xrange(Keys(ns).events))


def test_reconcile_stops_a_previous_managers_engine_and_leaves_strangers(settings: Settings, r: redis.Redis) -> None:
    w, rt = make(settings, r, n=2)
    mine, other = list(w.records)
    orphan = FakeProc(mine, 777, rt.time() - 50, None)
    stranger = FakeProc("XYZUSDT", 778, rt.time() - 50, None)  # pid recorded for `other`, but not its engine
    rt.procs += [orphan, stranger]
    r.hset(w.keys.state(mine), mapping={"status": "running", "pid": "777", "started_at": f"{orphan.create_time}",
                                        "restarts": "3"})
    r.hset(w.keys.state(other), mapping={"status": "failed", "pid": "778", "started_at": f"{stranger.create_time}"})
    t0 = rt.now
    w.reconcile()
    assert not orphan.alive() and (mine, signal.SIGKILL) in rt.signals
    assert rt.now - t0 >= ORPHAN_GRACE_S, "it had its grace period to stop by itself"
    assert stranger.alive()
    assert w.records[mine].restarts == 3 and w.records[mine].state is S.STOPPED
    assert w.records[other].state is S.FAILED


def test_a_symbol_leased_by_another_manager_is_refused(settings: Settings, r: redis.Redis) -> None:
    w, _ = make(settings, r)
    sym = next(iter(w.records))
    Lease(r, w.keys, sym, "someone-else", 4242, ttl_s=30).acquire()
    with pytest.raises(UsageError, match=f"{sym} is already leased by a live engine elsewhere"):
        w.check_leases()


def test_a_start_for_an_unreaped_dead_engine_accounts_for_the_death_first(settings: Settings, r: redis.Redis,
                                                                          ns: str) -> None:
    w, rt = make(settings, r)
    sym = next(iter(w.records))
    d = Driver(w, rt, r)
    w.start_all()
    assert d.run(2, d.all_running)
    rt.crash(sym)
    w.start(sym)  # an operator's start arrives before the loop saw the exit
    assert any(f["type"] == "crashed" for _, f in r.xrange(Keys(ns).events)), "the crash is not lost"
    assert d.run(2, d.all_running) and len(rt.procs) == 2, "one new process, not two"
    assert w.records[sym].failures == 0, "an operator start begins a fresh count"
