"""Is each engine well? Its heartbeat in Redis, its lease, its memory; verdicts for the watchdog to act on.

* ``up``: the first heartbeat of a starting engine (it is running).
* ``hung``: no heartbeat for longer than the timeout (start timeout while starting). Not while Redis is
  unreachable, nor for a timeout after it answers again (the engines' beats were lost, not late).
* ``fenced``: no heartbeat, and its lease now belongs to another manager of the pool: this manager was
  paused (SIGSTOP, a frozen VM) long enough for another to take the symbol over. Its engine cannot write
  (fencing); it is stopped without an alarm: that is a takeover, not a fault.
* ``overdue``: asked to stop (a hand-over, a restart, a removal) more than ``stop_timeout_s`` ago and
  still there: killed (a stop that never waits, ``stop(wait=False)``, still ends).
* ``memory``: its resident memory is above its ``max_rss_mb`` (the engine config's, else
  ``LEVIBOT_ENGINE_MAX_RSS_MB``): it is restarted at a safe point (a graceful stop: state flushed,
  everything journaled; the new process rebuilds its position from the journal), not counted as a crash.

Decides nothing itself: it reads (through the ``Runtime`` and the state store) and reports.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import redis

from backend.src.core.keys import Keys
from backend.src.core.lease import read_lease
from backend.src.core.runtime import Runtime
from backend.src.core.settings import Settings
from backend.src.core.states import EngineState
from backend.src.supervisor.engine_record import EngineRecord
from backend.src.supervisor.restart_policy import RestartPolicy
from backend.src.supervisor.state_store import StateStore

S = EngineState
log = logging.getLogger(__name__)
MEMORY_CHECK_S = 1.0  # how often resident memory is read (one /proc read per engine)
MB = 1024 * 1024


@dataclass(frozen=True)
class Verdict:
    rec: EngineRecord
    kind: Literal["up", "hung", "fenced", "memory", "overdue"]
    detail: str = ""


class Liveness:
    def __init__(self, settings: Settings, r: redis.Redis, keys: Keys, store: StateStore, rt: Runtime,
                 owner: str) -> None:
        self.settings, self.r, self.keys, self.store, self.rt, self.owner = settings, r, keys, store, rt, owner
        self.redis_back_at = 0.0  # when Redis answered again (0: unknown, it does not answer)
        self.memory_at = rt.monotonic()

    def max_rss_mb(self, rec: EngineRecord) -> float | None:
        return rec.spec.config.max_rss_mb or self.settings.engine_max_rss_mb

    def check(self, records: Iterable[EngineRecord], now: float) -> list[Verdict]:
        live = [r for r in records if r.proc is not None and r.proc.alive()]
        if not live:
            return []
        try:
            beats = self.store.heartbeats([r.symbol for r in live])
        except redis.RedisError:
            self.redis_back_at = 0.0  # unknown until it answers; no hang verdicts meanwhile
            return []
        if self.redis_back_at == 0.0:
            self.redis_back_at = now
        out = [v for rec in live if (v := self._beat(rec, beats.get(rec.symbol), now)) is not None]
        if now - self.memory_at >= MEMORY_CHECK_S:
            self.memory_at = now
            out += self._memory(live)
        return out

    def _beat(self, rec: EngineRecord, hb: tuple[int, int, float] | None, now: float) -> Verdict | None:
        proc = rec.proc
        if proc is None:
            return None
        up = None
        if hb is not None and hb[0] == proc.pid:
            rec.last_hb = max(rec.last_hb, now - max(0.0, self.rt.time() - hb[2]))
            if rec.state in (S.STARTING, S.RESTARTING) and not rec.stop_requested:
                up = Verdict(rec, "up")
        ref = max(rec.last_hb, self.redis_back_at)
        waiting = rec.state in (S.STARTING, S.RESTARTING) or rec.liquidating
        limit = self.settings.start_timeout_s if waiting else self.settings.heartbeat_timeout_s
        if rec.state is S.STOPPING:  # asked to stop: it has stop_timeout_s, then it is killed
            overdue = now - rec.stopping_since
            if rec.kill_sent or overdue <= self.settings.stop_timeout_s:
                return None
            return Verdict(rec, "overdue", f"ignored SIGTERM for {overdue:.1f}s")
        if now - ref <= limit or rec.kill_sent:
            return up
        age = f"{now - ref:.1f}"
        try:
            lease = read_lease(self.r, self.keys, rec.symbol) if rec.state is S.RUNNING else None
        except redis.RedisError:
            lease = None
        # (only a running engine: a starting one may be waiting for the last owner's lease, a slow start)
        if lease is not None and lease.owner != self.owner:
            return Verdict(rec, "fenced", f"manager {lease.owner} holds its lease (this manager was paused past "
                                          "the lease TTL); its engine is fenced off")
        return Verdict(rec, "hung", age)

    @staticmethod
    def forgive_stable(records: Iterable[EngineRecord], now: float, policy: RestartPolicy) -> None:
        """A stable run forgives earlier crashes (and only a stable run does)."""
        for rec in records:
            if rec.failures and rec.state is S.RUNNING and rec.running_since is not None \
                    and policy.stable(now - rec.running_since):
                log.info("engine %s stable again; crash count reset", rec.symbol, extra={"symbol": rec.symbol})
                rec.failures = 0

    def _memory(self, live: list[EngineRecord]) -> list[Verdict]:
        out = []
        for rec in live:
            limit = self.max_rss_mb(rec)
            if limit is None or rec.proc is None or rec.liquidating or rec.state is not S.RUNNING \
                    or rec.stop_requested:
                continue
            rss = self.rt.rss(rec.proc)
            if rss is not None and rss > limit * MB:
                out.append(Verdict(rec, "memory", f"resident memory {rss / MB:.0f} MB > max_rss_mb {limit:g}"))
        return out
