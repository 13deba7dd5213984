"""The pool's arithmetic and its Redis scripts, on a real Redis."""

from __future__ import annotations

import random

import redis

from backend.src.core.config import SourceSpec, SymbolConfig
from backend.src.core.keys import Keys
from backend.src.core.lease import Lease
from backend.src.core.redis_url import connect
from backend.src.core.settings import Settings
from backend.src.supervisor.pool import CLAIM, RENEW, Pool, fair_shares
from backend.src.supervisor.watchdog import Watchdog
from backend.tests.fakes.runtime import FakeRuntime


def test_fair_shares_split_evenly_and_respect_capacity() -> None:
    assert fair_shares(30, {"a": 50, "b": 50, "c": 50}) == {"a": 10, "b": 10, "c": 10}
    assert fair_shares(10, {"c": 50, "a": 50, "b": 50}) == {"a": 4, "b": 3, "c": 3}  # the same in every member
    assert fair_shares(10, {"a": 1, "b": 50}) == {"a": 1, "b": 9}  # --max-engines 1 leaves the rest to b
    assert fair_shares(10, {"a": 2, "b": 3}) == {"a": 2, "b": 3}  # more symbols than room: five stay down
    assert fair_shares(0, {"a": 5}) == {"a": 0}
    assert fair_shares(5, {}) == {}


def claim(r: redis.Redis, keys: Keys, owner: str, symbols: list[str], want: int) -> list[str]:
    args = [k for s in symbols for k in (keys.claim(s), keys.lease(s))]
    got = r.eval(CLAIM, len(args), *args, owner, 10_000, want)  # type: ignore[misc]
    return [symbols[int(i) - 1] for i in got]  # type: ignore[union-attr]


def test_a_claim_is_taken_once_and_never_over_another_managers_live_engine(r: redis.Redis, ns: str) -> None:
    keys = Keys(ns)
    assert claim(r, keys, "a", ["X", "Y", "Z"], 2) == ["X", "Y"]
    assert claim(r, keys, "b", ["X", "Y", "Z"], 5) == ["Z"]  # X and Y are a's
    # W has no claim, but a's engine still holds its lease (its manager's claim lapsed first): not free for b
    Lease(r, keys, "W", "a", 1, 10.0).acquire()
    assert claim(r, keys, "b", ["W"], 1) == []
    assert claim(r, keys, "a", ["W"], 1) == ["W"]  # its own engine's lease does not block a


def test_renewal_keeps_our_claims_and_reports_those_taken(r: redis.Redis, ns: str) -> None:
    keys = Keys(ns)
    claim(r, keys, "a", ["X"], 1)
    r.set(keys.claim("Y"), "b")
    members, capacity = keys.pool_members("p"), keys.pool_capacity("p")
    r.zadd(members, {"gone": 1})  # a member whose membership lapsed long ago
    r.hset(capacity, "gone", 7)
    r.sadd(keys.pool_symbols("p"), "X", "Y", "Z")
    lost, caps, symbols = r.eval(  # type: ignore[misc]
        RENEW, 6, members, capacity, keys.pool_symbols("p"), keys.claim("X"), keys.claim("Y"), keys.claim("Z"),
        "a", 10_000, "4:1")
    assert lost == [2]  # Y is b's now
    assert sorted(symbols) == ["X", "Y", "Z"]
    assert r.get(keys.claim("Z")) == "a"  # lapsed during an outage and nobody took it: ours again
    assert dict(zip(caps[::2], caps[1::2], strict=True)) == {"a": "4:1"}  # the lapsed member is gone
    assert r.zrange(members, 0, -1) == ["a"]


def members(settings: Settings, r: redis.Redis, n: int, symbols: list[str],
            capacity: int = 50) -> tuple[list[Pool], FakeRuntime]:
    """``n`` pool members on one Redis, each a real watchdog on a fake runtime (no processes, virtual time)."""
    rt = FakeRuntime()
    s = settings.model_copy(update={"pool": "p", "max_engines": capacity})
    cfgs, srcs = dict.fromkeys(symbols, SymbolConfig(on_failed="hold")), dict.fromkeys(symbols, SourceSpec("synthetic"))
    out = []
    for i in range(n):
        w = Watchdog(s, r, {}, srcs, runtime=rt, rng=random.Random(i), owner=f"m{i}")
        out.append(Pool("p", w, r, cfgs, srcs, rng=random.Random(i)))
    return out, rt


def counts(pools: list[Pool]) -> list[int]:
    return [len(p.held()) for p in pools]


def settle(pools: list[Pool], rt: FakeRuntime, rounds: int = 6) -> None:
    for _ in range(rounds):
        rt.sleep(0.6)
        for p in pools:
            p.step()
        for p in pools:  # a handed-over engine "exits" on the next loop step
            p.w.step(0.0)


def test_members_converge_on_their_shares_and_a_new_member_gets_its_own(settings: Settings,
                                                                       r: redis.Redis) -> None:
    syms = [f"S{i:02d}USDT" for i in range(10)]
    pools, rt = members(settings, r, 3, syms)
    pools[0].join()
    assert counts(pools[:1]) == [10]  # alone: everything
    pools[1].join()
    settle(pools[:2], rt)
    assert sorted(counts(pools[:2])) == [5, 5]
    pools[2].join()
    settle(pools, rt)
    assert sorted(counts(pools)) == [3, 3, 4]
    claimed = [s for p in pools for s in p.held()]
    assert sorted(claimed) == syms  # each symbol once
    assert all(r.get(Keys(settings.namespace).claim(s)) == p.owner for p in pools for s in p.held())


def test_after_a_redis_outage_a_member_renews_before_it_claims(settings: Settings, r: redis.Redis) -> None:
    syms = [f"S{i:02d}USDT" for i in range(4)]
    pools, rt = members(settings, r, 2, syms)
    for p in pools:
        p.join()
    settle(pools, rt)
    assert counts(pools) == [2, 2]
    keys = Keys(settings.namespace)
    dead = connect("redis://127.0.0.1:1/0", timeout=0.1)
    for p in pools:  # Redis away longer than the TTL: every membership and claim lapses
        p.r = dead
        p.step(force=True)
    r.delete(keys.pool_members("p"), keys.pool_capacity("p"), *[keys.claim(s) for s in syms])
    pools[0].r = r
    pools[0].step(force=True)  # back first: alone in the pool, but it only renews what it runs
    assert counts(pools) == [2, 2] and sum(1 for s in syms if r.get(keys.claim(s)) == "m0") == 2
    pools[1].r = r
    settle(pools, rt, rounds=int(settings.lease_ttl_s / 0.6) + 2)
    assert counts(pools) == [2, 2]  # nobody took the other's symbols
