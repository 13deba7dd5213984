"""A symbol pool shared by several managers (``--pool NAME``): claims, fair share, failover.

Every member adds its config's symbols to the pool's set and renews, every half second, its
membership and its claims in one Lua call. A symbol runs where it is claimed: a claim is one
atomic ``SET`` that succeeds only if nobody claims the symbol and no other manager's engine
holds its lease, and the engine's own lease (with its fencing generation) keeps "never two
engines for one symbol" true even if two managers disagreed for a moment.

Shares: the pool's symbols divided among the live members, water-filled up to each member's
``--max-engines``, the same computation in every member. A member claims free symbols while it
holds fewer than its share and hands symbols back (engine stopped, claim deleted) while it holds
more than its share while another holds fewer than its own (each member publishes its count with its
membership). A member that stops gracefully leaves the pool first (the others
recompute at once) and releases its claims as its engines stop; one that dies loses its claims
and leases after ``LEVIBOT_LEASE_TTL_S`` and the others start its symbols, each engine rebuilding
its journal from the symbol's Redis stream (``engine/journal_stream.py``).
"""

from __future__ import annotations

import logging
import random

import redis

from backend.src.core.config import SourceSpec, SymbolConfig
from backend.src.core.errors import UsageError
from backend.src.core.keys import Keys
from backend.src.core.lease import RELEASE
from backend.src.supervisor.control import Supervised
from backend.src.supervisor.watchdog import Watchdog

log = logging.getLogger(__name__)
STEP_S = 0.5

# KEYS: members zset, capacity hash, pool symbols set, then the claim of every symbol this member runs.
# ARGV: owner, ttl_ms, '<capacity>:<symbols held>'.
# Returns {indexes of claims another member holds, capacity hash, the pool's symbols}: one round trip a step.
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do redis.call('HDEL', KEYS[2], m) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local lost = {}
for i = 4, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[i], ARGV[2])
  elseif not cur then redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
  else table.insert(lost, i - 3) end
end
return {lost, redis.call('HGETALL', KEYS[2]), redis.call('SMEMBERS', KEYS[3])}
"""

# KEYS: claim, lease of each candidate in turn. ARGV: owner, ttl_ms, how many. Returns the candidates taken
# (1-based). A symbol is free when nobody claims it and no other manager's engine holds its lease.
CLAIM = """
local got = {}
for i = 1, #KEYS, 2 do
  if #got >= tonumber(ARGV[3]) then break end
  if not redis.call('GET', KEYS[i]) then
    local lease = redis.call('GET', KEYS[i + 1])
    if not lease or string.match(lease, '^%d+|(.*)|%d+$') == ARGV[1] then
      redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
      table.insert(got, (i + 1) / 2)
    end
  end
end
return got
"""


def fair_shares(n: int, capacity: dict[str, int]) -> dict[str, int]:
    """``n`` symbols over the members, one at a time in owner order, none beyond its capacity."""
    out = dict.fromkeys(capacity, 0)
    left = n
    while left > 0:
        room = sorted(m for m in capacity if out[m] < capacity[m])
        if not room:
            break
        for m in room[:left]:
            out[m] += 1
        left -= min(left, len(room))
    return out


class Solo:
    """No pool: the manager runs every symbol of its config; the watchdog is what the control plane drives."""

    def __init__(self, watchdog: Watchdog) -> None:
        self.supervised: Supervised = watchdog

    def join(self) -> None: ...
    def step(self) -> None: ...
    def leave(self) -> None: ...
    def release_all(self) -> None: ...


class Pool:
    """What the control plane drives in a pool (the ``Supervised`` protocol) on top of the watchdog."""

    def __init__(self, name: str, watchdog: Watchdog, r: redis.Redis, configs: dict[str, SymbolConfig],
                 sources: dict[str, SourceSpec], *, rng: random.Random | None = None) -> None:
        self.name, self.w, self.r = name, watchdog, r
        self.keys: Keys = watchdog.keys
        self.owner = watchdog.owner
        self.capacity = watchdog.settings.max_engines
        self.ttl_ms = int(watchdog.settings.lease_ttl_s * 1000)
        self.wanted, self.sources = dict(configs), dict(sources)
        self.local: set[str] = set()  # dashboard replays: run here, never pooled
        self.releasing: set[str] = set()
        self.rng = rng or random.Random()  # noqa: S311 - spreading claims, not crypto
        self.last_step = float("-inf")
        # After Redis was unreachable, every membership and claim may have lapsed at once: the first member
        # back would see itself alone and claim everything. Renew only, for one TTL, while the others return.
        self.settle_until = float("-inf")
        self.shares: dict[str, int] = {}
        self.unknown_logged: set[str] = set()
        self.supervised: Supervised = self

    # ------------------------------------------------------------------ membership

    def join(self) -> None:
        if self.wanted:
            self.r.sadd(self.keys.pool_symbols(self.name), *self.wanted)
        self.step(force=True)
        log.info("joined pool %s: %d symbols, up to %d engines here", self.name,
                 self.r.scard(self.keys.pool_symbols(self.name)), self.capacity)

    def leave(self) -> None:
        """Before the engines stop: the others stop counting us at once."""
        try:
            pipe = self.r.pipeline(transaction=True)
            pipe.zrem(self.keys.pool_members(self.name), self.owner)
            pipe.hdel(self.keys.pool_capacity(self.name), self.owner)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("pool %s: could not leave (%s); the membership lapses by itself", self.name, exc)

    def release_all(self) -> None:
        """After the engines stopped: every claim back, so the others start them now."""
        for sym in [*self.w.records, *self.releasing]:
            self.unclaim(sym)

    def held(self) -> list[str]:
        return [s for s in self.w.records if s not in self.releasing and s not in self.local]

    # ------------------------------------------------------------------ the loop

    def step(self, *, force: bool = False) -> None:
        now = self.w.rt.monotonic()
        if not force and now - self.last_step < STEP_S:
            return
        self.last_step = now
        try:
            self._step(settled=now >= self.settle_until)
        except redis.RedisError as exc:
            self.settle_until = now + self.ttl_ms / 1000
            log.debug("pool %s waiting for redis: %s", self.name, exc)

    def _step(self, *, settled: bool = True) -> None:
        held = self.held()
        lost_idx, caps, symbols = self.r.eval(  # type: ignore[misc]
            RENEW, 3 + len(held), self.keys.pool_members(self.name), self.keys.pool_capacity(self.name),
            self.keys.pool_symbols(self.name), *[self.keys.claim(s) for s in held],
            self.owner, self.ttl_ms, f"{self.capacity}:{len(held)}")
        for i in lost_idx:
            sym = held[int(i) - 1]
            log.error("pool %s: %s is claimed by another manager now; stopping our engine", self.name, sym,
                      extra={"symbol": sym})
            self.releasing.add(sym)  # the claim is not deleted: it is not ours
            self.w.remove(sym)
        for sym in list(self.releasing):
            if sym not in self.w.records:  # its engine has exited
                self.unclaim(sym)
                self.releasing.discard(sym)
        pool = {str(s) for s in symbols}
        members = {str(caps[i]): str(caps[i + 1]).split(":") for i in range(0, len(caps), 2)}
        self.shares = fair_shares(len(pool), {m: int(v[0]) for m, v in members.items()})
        below = any(int(v[1]) < self.shares[m] for m, v in members.items() if m != self.owner)
        mine = self.shares.get(self.owner, 0)
        held = self.held()
        if not settled:
            return
        for sym in [s for s in held if s not in pool]:
            self.hand_over(sym, "no longer in the pool")
        held = self.held()
        if len(held) < mine:
            self.claim(pool, mine - len(held))
        elif len(held) > mine and below:  # another member has room for what we hold beyond our share
            for sym in sorted(held)[mine:]:
                self.hand_over(sym, f"fair share: {mine} of {len(pool)} symbols here")

    def claim(self, pool: set[str], want: int) -> None:
        candidates = [s for s in pool if s in self.wanted and s not in self.w.records]
        for s in sorted(pool - set(self.wanted) - self.unknown_logged):
            self.unknown_logged.add(s)
            log.warning("pool %s: %s is in the pool but not in this manager's config; left to the others",
                        self.name, s)
        if not candidates:
            return
        self.rng.shuffle(candidates)  # members starting together rarely race for the same symbols
        keys = [k for s in candidates for k in (self.keys.claim(s), self.keys.lease(s))]
        got = self.r.eval(CLAIM, len(keys), *keys, self.owner, self.ttl_ms, want)  # type: ignore[misc]
        for i in got:
            sym = candidates[int(i) - 1]
            log.info("pool %s: claimed %s", self.name, sym, extra={"symbol": sym})
            self.w.add(sym, self.wanted[sym], self.sources[sym])

    def hand_over(self, symbol: str, why: str) -> None:
        log.info("pool %s: handing %s over (%s)", self.name, symbol, why, extra={"symbol": symbol})
        self.releasing.add(symbol)
        self.w.remove(symbol)

    def unclaim(self, symbol: str) -> None:
        try:
            self.r.eval(RELEASE, 1, self.keys.claim(symbol), self.owner)
        except redis.RedisError:
            pass  # it lapses by itself

    # ------------------------------------------------------------------ the control plane's view

    def configs(self) -> dict[str, SymbolConfig]:
        return {**self.wanted, **{s: self.w.records[s].spec.config for s in self.local if s in self.w.records}}

    def _held(self, symbol: str) -> None:
        if symbol not in self.w.records:
            if symbol in self.wanted:
                raise UsageError(f"symbol: {symbol} runs under another manager of pool {self.name}")
            raise UsageError(f"symbol: {symbol} is not managed here")

    def start(self, symbol: str) -> None:
        self._held(symbol)
        self.w.start(symbol)

    def stop(self, symbol: str, wait: bool = True) -> None:
        self._held(symbol)
        self.w.stop(symbol, wait)

    def restart_async(self, symbol: str) -> None:
        self._held(symbol)
        self.w.restart_async(symbol)

    def add(self, symbol: str, config: SymbolConfig, source: SourceSpec) -> None:
        if source.speed is not None:  # a dashboard replay of a local file: runs here, not pooled
            self.local.add(symbol)
            self.w.add(symbol, config, source)
            return
        self.wanted[symbol], self.sources[symbol] = config, source
        self.r.sadd(self.keys.pool_symbols(self.name), symbol)

    def remove(self, symbol: str) -> None:
        self.wanted.pop(symbol, None)
        self.local.discard(symbol)
        self.r.srem(self.keys.pool_symbols(self.name), symbol)
        if symbol in self.w.records:
            self.hand_over(symbol, "removed from the config")

    def update_config(self, symbol: str, config: SymbolConfig) -> None:
        self.wanted[symbol] = config
        if symbol in self.w.records:
            self.w.update_config(symbol, config)
