"""The pool's arithmetic and its Redis scripts, on a real Redis."""

from __future__ import annotations

import redis

from backend.src.core.keys import Keys
from backend.src.core.lease import Lease
from backend.src.supervisor.pool import CLAIM, RENEW, fair_shares


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
    lost, caps = r.eval(RENEW, 5, members, capacity, keys.claim("X"), keys.claim("Y"), keys.claim("Z"),  # type: ignore[misc]
                        "a", 10_000, "4:1")
    assert lost == [2]  # Y is b's now
    assert r.get(keys.claim("Z")) == "a"  # lapsed during an outage and nobody took it: ours again
    assert dict(zip(caps[::2], caps[1::2], strict=True)) == {"a": "4:1"}  # the lapsed member is gone
    assert r.zrange(members, 0, -1) == ["a"]
