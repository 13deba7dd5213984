"""Lease and fencing scripts against the real Redis."""

from __future__ import annotations

import time

import pytest
import redis

from backend.src.core.errors import LeaseError, RedisUnavailable
from backend.src.core.keys import Keys
from backend.src.core.lease import BEAT, RENEW, Lease, read_lease
from backend.src.core.redis_url import connect


def lease(r: redis.Redis, ns: str, owner: str = "host-a:/data", pid: int = 100, ttl: float = 5.0) -> Lease:
    return Lease(r, Keys(ns), "BTCUSDT", owner, pid, ttl)


def test_generation_grows_per_acquisition(r: redis.Redis, ns: str) -> None:
    a = lease(r, ns)
    assert a.acquire() == 1
    b = lease(r, ns, pid=101)  # same manager, new engine process after the old one was reaped
    assert b.acquire() == 2
    info = read_lease(r, Keys(ns), "BTCUSDT")
    assert info is not None and (info.generation, info.owner, info.pid) == (2, "host-a:/data", 101)


def test_other_owner_refused_while_held(r: redis.Redis, ns: str) -> None:
    lease(r, ns).acquire()
    with pytest.raises(LeaseError, match="leased by another live engine .*host-a:/data"):
        lease(r, ns, owner="host-b:/data").acquire()


def test_other_owner_may_take_an_expired_lease(r: redis.Redis, ns: str) -> None:
    lease(r, ns, ttl=0.1).acquire()
    time.sleep(0.2)
    assert lease(r, ns, owner="host-b:/data").acquire() == 2


def test_min_generation_from_the_journal(r: redis.Redis, ns: str) -> None:
    assert lease(r, ns).acquire(min_generation=42) == 42
    assert lease(r, ns, pid=5).acquire() == 43


def _renew(r: redis.Redis, ns: str, lz: Lease) -> int:
    k = Keys(ns)
    return int(r.eval(RENEW, 2, k.lease("BTCUSDT"), k.generation("BTCUSDT"), lz.token, 5000, lz.generation))


def test_renew_keeps_retakes_after_expiry_and_detects_takeover(r: redis.Redis, ns: str) -> None:
    a = lease(r, ns, ttl=0.1)
    a.acquire()
    assert _renew(r, ns, a) == 1
    r.delete(Keys(ns).lease("BTCUSDT"))  # e.g. expired during a long Redis outage
    assert _renew(r, ns, a) == 1, "nobody took it meanwhile: ours again"
    r.delete(Keys(ns).lease("BTCUSDT"))
    b = lease(r, ns, owner="host-b:/data", pid=7)
    b.acquire()
    assert _renew(r, ns, a) == 0, "a newer generation exists: fenced off"
    r.delete(Keys(ns).lease("BTCUSDT"))
    assert _renew(r, ns, a) == 0, "even once the newer lease expired"


def test_beat_writes_nothing_without_the_lease(r: redis.Redis, ns: str) -> None:
    k = Keys(ns)
    a = lease(r, ns)
    a.acquire()
    b = lease(r, ns, pid=200)
    b.acquire()  # newer engine of the same manager
    args = (BEAT, 6, k.lease("BTCUSDT"), k.generation("BTCUSDT"), k.heartbeat("BTCUSDT"), k.state("BTCUSDT"),
            k.engines, k.config("BTCUSDT"))
    assert r.eval(*args, a.token, 5000, a.generation, "100:1:1.0", 5000, "BTCUSDT", "status", "zombie")[0] == 0
    assert r.hget(k.state("BTCUSDT"), "status") is None and r.get(k.heartbeat("BTCUSDT")) is None
    r.hset(k.config("BTCUSDT"), "version", "7")
    assert r.eval(*args, b.token, 5000, b.generation, "200:2:1.0", 5000, "BTCUSDT", "status", "running") == [1, "7"]
    assert r.hget(k.state("BTCUSDT"), "status") == "running" and r.sismember(k.engines, "BTCUSDT")


def test_release_only_own(r: redis.Redis, ns: str) -> None:
    a = lease(r, ns)
    a.acquire()
    b = lease(r, ns, pid=9)
    b.acquire()
    a.release()
    assert read_lease(r, Keys(ns), "BTCUSDT") is not None
    b.release()
    assert read_lease(r, Keys(ns), "BTCUSDT") is None


def test_unreachable_redis_is_transient(ns: str) -> None:
    with pytest.raises(RedisUnavailable):
        lease(connect("redis://127.0.0.1:1/0"), ns).acquire()
