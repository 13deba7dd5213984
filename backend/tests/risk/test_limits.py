"""15 processes race for position slots: no limit is ever exceeded, a kill -9 leaks nothing."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time

import redis

from backend.risk.limits import PortfolioLimits
from backend.src.core.keys import Keys
from backend.src.core.lease import Lease
from backend.src.core.redis_url import connect
from backend.tests.conftest import wait_for

MAX_TOTAL, MAX_GROUP = 6, 2
GROUPS = ["majors", "layer1", "payments", ""]  # "" = no group


def worker(url: str, ns: str, idx: int, rounds: int, out: mp.Queue, hold: mp.Event,  # type: ignore[type-arg]
           go: mp.Event) -> None:  # type: ignore[type-arg]
    r = connect(url)
    keys = Keys(ns)
    symbol = f"S{idx:02d}USDT"
    go.wait(60)  # all fifteen race at once, not one after another on a busy machine
    lease = Lease(r, keys, symbol, "racer", os.getpid(), ttl_s=1.0)
    lease.acquire()
    limits = PortfolioLimits(r, keys)
    rng = random.Random(idx)
    worst_total = worst_group = allowed = refused = 0
    for _ in range(rounds):
        r.pexpire(keys.lease(symbol), 1000)
        d = limits.reserve(symbol, lease.token, group=GROUPS[idx % 4], exposure_usd=100.0, max_exposure_usd=1000.0,
                           max_total=MAX_TOTAL, max_group=MAX_GROUP)
        if d.allowed:
            allowed += 1
            worst_total, worst_group = max(worst_total, d.total), max(worst_group, d.in_group)
            if rng.random() < 0.7:
                limits.release(symbol, lease.token)
        else:
            refused += 1
    out.put((idx, worst_total, worst_group, allowed, refused))
    if hold.is_set():  # the victim: take a slot and die holding it
        while not limits.reserve(symbol, lease.token, group="", exposure_usd=1.0, max_exposure_usd=1000.0,
                                 max_total=MAX_TOTAL, max_group=MAX_GROUP).allowed:
            r.pexpire(keys.lease(symbol), 1000)
        out.put(("holding", idx))
        for _ in range(600):  # alive and holding: it keeps its lease fresh, as an engine's heartbeat does
            r.pexpire(keys.lease(symbol), 1000)
            time.sleep(0.1)
    r.pexpire(keys.lease(symbol), 5000)  # a loaded machine may have let the 1 s lease lapse since the last round
    limits.release(symbol, lease.token)


def test_racing_engines_never_breach_a_limit(redis_server, r: redis.Redis, ns: str) -> None:
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    victim_flag, plain, go = ctx.Event(), ctx.Event(), ctx.Event()
    victim_flag.set()
    procs = [ctx.Process(target=worker, args=(redis_server.url, ns, i, 400, out, victim_flag if i == 0 else plain, go))
             for i in range(15)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    go.set()
    items = [out.get(timeout=120) for _ in range(16)]
    took = time.monotonic() - t0
    results = [x for x in items if x[0] != "holding"]
    assert ("holding", 0) in items
    assert all(worst_total <= MAX_TOTAL and worst_group <= MAX_GROUP for _, worst_total, worst_group, *_ in results)
    calls = sum(a + f for *_, a, f in results)
    assert calls == 15 * 400 and sum(f for *_, f in results) > 0, "the limits did bite"
    assert sum(a for *_, a, _ in results) > 15 * 400 / 4, "and mostly let engines trade"
    for p in procs[1:]:
        p.join(30)
    limits = PortfolioLimits(r, Keys(ns))
    assert list(limits.slots()) == ["S00USDT"], "every live worker released its slot"
    os.kill(procs[0].pid, signal.SIGKILL)  # type: ignore[arg-type]
    procs[0].join()
    # The next reservation by anyone frees the dead holder's slot once its lease lapses.
    lease = Lease(r, Keys(ns), "S99USDT", "racer", 1, ttl_s=5.0)
    lease.acquire()

    def freed() -> bool:
        limits.reserve("S99USDT", lease.token, group="", exposure_usd=1.0, max_exposure_usd=10.0,
                       max_total=MAX_TOTAL, max_group=MAX_GROUP)
        return "S00USDT" not in limits.slots()

    wait_for(freed, 5, interval=0.1, what="dead holder's slot freed")
    print(f"{calls} reservations by 15 processes in {took:.1f}s")


def test_exposure_and_release_only_by_holder(r: redis.Redis, ns: str) -> None:
    keys = Keys(ns)
    lease = Lease(r, keys, "BTCUSDT", "me", 1, ttl_s=5.0)
    lease.acquire()
    limits = PortfolioLimits(r, keys)
    d = limits.reserve("BTCUSDT", lease.token, group="majors", exposure_usd=2500, max_exposure_usd=2000,
                       max_total=5, max_group=5)
    assert not d.allowed and d.reason == "max_symbol_exposure"
    assert limits.reserve("BTCUSDT", lease.token, group="majors", exposure_usd=1500, max_exposure_usd=2000,
                          max_total=5, max_group=5).allowed
    assert not limits.release("BTCUSDT", "someone-else")
    assert limits.release("BTCUSDT", lease.token) and limits.slots() == {}


def test_gross_and_net_exposure_count_shorts_both_ways(r: redis.Redis, ns: str) -> None:
    keys = Keys(ns)
    limits = PortfolioLimits(r, keys)
    leases = {}
    for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"):
        leases[sym] = Lease(r, keys, sym, "me", 1, ttl_s=5.0)
        leases[sym].acquire()

    def reserve(sym: str, exposure: float) -> str:
        d = limits.reserve(sym, leases[sym].token, group="majors" if sym in ("BTCUSDT", "ETHUSDT") else "",
                           exposure_usd=exposure, max_exposure_usd=5000, max_total=10, max_group=1,
                           max_gross_usd=6000, max_net_usd=3000)
        return d.reason

    assert reserve("BTCUSDT", -2500) == "ok"  # a short takes its slot like a long
    assert reserve("ETHUSDT", 2000) == "max_correlated_positions"  # the group counts both directions
    assert reserve("SOLUSDT", 2000) == "ok"  # gross 4500, net -500
    assert reserve("XRPUSDT", -2000) == "max_gross_exposure"  # gross would be 6500
    assert reserve("SOLUSDT", -1500) == "max_net_exposure"  # turned short: net would be -4000
    assert reserve("XRPUSDT", 1500) == "ok"  # gross 6000 (at the limit), net +1000
    assert {s: v.split("|")[1] for s, v in limits.slots().items()} == {
        "BTCUSDT": "-2500.000000", "SOLUSDT": "2000.000000", "XRPUSDT": "1500.000000"}
