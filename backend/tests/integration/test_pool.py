"""Several managers on one Redis (``--pool``): fair share, takeover after a kill -9 of a whole manager
tree with the journal carried through Redis, hand-over on a graceful stop, ``--max-engines``."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from backend.scripts.bench_failover import PoolFleet, journal, one_round, stream_entries
from backend.src.core.redis_launcher import EmbeddedRedis

pytestmark = pytest.mark.slow
SYMBOLS = [f"P{i}USDT" for i in range(6)]


def test_a_dead_managers_symbols_move_with_their_positions(redis_server: EmbeddedRedis, ns: str,
                                                           tmp_path: Path) -> None:
    ttl = 3.0
    fleet = PoolFleet(tmp_path, redis_server.url, SYMBOLS, 2, ns=ns,
                      env={"LEVIBOT_LEASE_TTL_S": str(ttl), "LEVIBOT_SYNTHETIC_INTERVAL_S": "0.1",
                           "LEVIBOT_HEARTBEAT_INTERVAL_S": "0.2", "LEVIBOT_HEARTBEAT_TIMEOUT_S": "2"})
    try:
        for m in fleet.members:
            fleet.start(m)
        fleet.wait(fleet.balanced, 60, "3 symbols on each manager")
        victim = fleet.members[0]

        def victim_traded() -> bool:  # every symbol about to move has something to carry (a busy start is slow)
            mine = [s for s, o in fleet.claims().items() if o == victim.owner]
            return bool(mine) and all(fleet.r.xlen(f"{ns}journal:{s}") > 0 for s in mine) \
                and sum(fleet.r.xlen(f"{ns}journal:{s}") for s in SYMBOLS) > 20

        fleet.wait(victim_traded, 60, "trades on the victim's symbols")
        gens = {s: int(fleet.r.get(f"{ns}gen:{s}") or 0) for s in SYMBOLS}
        moved = one_round(fleet, victim, ttl)
        assert len(moved) == 3
        assert sum(t.entries for t in moved) > 0
        for t in moved:
            assert t.same_entries, f"{t.symbol}: the new journal does not start with the dead engine's entries"
            assert t.in_flight <= 1  # at most the one write the kill interrupted, never acted on
            assert t.position_after == pytest.approx(t.position_before, abs=1e-12), t
            assert int(fleet.r.get(f"{ns}gen:{t.symbol}") or 0) > gens[t.symbol]  # a newer generation
        survivor = fleet.members[1]
        assert set(fleet.claims().values()) == {survivor.owner}
        fleet.start(victim)  # it rejoins: the survivor hands three symbols back, gracefully
        fleet.wait(fleet.balanced, 60, "the rejoined manager's share")
        for s in SYMBOLS:  # every journal is the stream, wherever the symbol ran last
            owner = fleet.owner_of(fleet.claims()[s])
            fleet.wait(lambda s=s, o=owner: stream_equals_journal(fleet, s, o.data_dir), 20, f"{s} stream")
    finally:
        fleet.stop()


def stream_equals_journal(fleet: PoolFleet, symbol: str, data_dir: Path) -> bool:
    local = journal(data_dir, symbol)
    return bool(local) and stream_entries(fleet.r, fleet.ns, symbol)[: len(local)] == local


def test_a_graceful_stop_hands_over_at_once_and_max_engines_caps_a_member(redis_server: EmbeddedRedis, ns: str,
                                                                         tmp_path: Path) -> None:
    fleet = PoolFleet(tmp_path, redis_server.url, SYMBOLS, 2, ns=ns,
                      env={"LEVIBOT_LEASE_TTL_S": "30", "LEVIBOT_HEARTBEAT_INTERVAL_S": "0.2"})
    capped, other = fleet.members
    try:
        fleet.start(capped, "--max-engines", "4")
        fleet.start(other)
        fleet.wait(fleet.balanced, 60, "3 symbols on each manager")
        assert other.proc is not None
        other.proc.terminate()
        assert other.proc.wait(30) == 0
        other.proc = None
        # the capped manager takes what it has room for at once (its 30 s lease TTL never runs out) ...
        fleet.wait(lambda: Counter(fleet.claims().values()) == {capped.owner: 4}
                   and len(fleet.heartbeats()) == 4, 10, "4 symbols on the capped manager")
        time.sleep(2)
        assert Counter(fleet.claims().values()) == {capped.owner: 4}  # ... and never more than --max-engines
        fleet.start(other)
        fleet.wait(fleet.balanced, 60, "3 symbols on each manager again")
    finally:
        fleet.stop()
