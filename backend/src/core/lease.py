"""Per-symbol lease with a fencing token (generation), enforced by Lua scripts in Redis.

The value is ``<generation>|<owner>|<pid>``. ``owner`` names a manager (host + data dir):
a symbol leased by a live engine of another owner is refused. The generation only grows;
the engine stamps it on every journal entry and Redis state write, so a stale engine can
never write after a newer one took over.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from backend.src.core.errors import LeaseError, RedisUnavailable
from backend.src.core.keys import Keys

ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local owner = string.match(cur, '^%d+|(.*)|%d+$')
  if owner ~= ARGV[1] then return {0, cur} end
end
local gen = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[4])
if gen < floor then gen = floor; redis.call('SET', KEYS[2], gen) end
local val = gen .. '|' .. ARGV[1] .. '|' .. ARGV[2]
redis.call('SET', KEYS[1], val, 'PX', ARGV[3])
return {gen, val}
"""

# Renew; if the key expired (e.g. Redis was down longer than the TTL) take it back only
# if nobody acquired a newer generation meanwhile. Sets ``held`` to true or false.
_RENEW_BODY = """
local held = false
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]); held = true
elseif not cur then
  local g = tonumber(redis.call('GET', KEYS[2]) or '0')
  if g <= tonumber(ARGV[3]) then
    redis.call('SET', KEYS[2], ARGV[3])
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]); held = true
  end
end
"""

# KEYS: lease, generation. ARGV: token, ttl_ms, generation. Returns 1 = held, 0 = lost.
RENEW = _RENEW_BODY + "if held then return 1 end\nreturn 0\n"

# Renew, then heartbeat and state in the same atomic step: a stale engine writes nothing.
# KEYS: lease, generation, heartbeat, state hash, engines set, config hash.
# ARGV: token, ttl_ms, generation, heartbeat value, heartbeat ttl_ms, symbol, field, value, ...
# Returns {0, ''} when the lease is lost, else {1, <config version or ''>} (hot reload).
BEAT = _RENEW_BODY + """
if not held then return {0, ''} end
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
if #ARGV > 6 then redis.call('HSET', KEYS[4], unpack(ARGV, 7)) end
redis.call('SADD', KEYS[5], ARGV[6])
return {1, redis.call('HGET', KEYS[6], 'version') or ''}
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class LeaseInfo:
    generation: int
    owner: str
    pid: int

    @staticmethod
    def parse(value: str) -> LeaseInfo:
        gen, owner, pid = value[: value.index("|")], value[value.index("|") + 1 : value.rindex("|")], value[
            value.rindex("|") + 1 :
        ]
        return LeaseInfo(int(gen), owner, int(pid))


def read_lease(r: redis.Redis, keys: Keys, symbol: str) -> LeaseInfo | None:
    value = r.get(keys.lease(symbol))
    return LeaseInfo.parse(str(value)) if value else None


class Lease:
    def __init__(self, r: redis.Redis, keys: Keys, symbol: str, owner: str, pid: int, ttl_s: float) -> None:
        self.r, self.keys, self.symbol = r, keys, symbol
        self.owner, self.pid = owner, pid
        self.ttl_ms = int(ttl_s * 1000)
        self.generation = 0
        self.token = ""

    def acquire(self, min_generation: int = 0) -> int:
        """Take the lease; LeaseError if another owner holds it, RedisUnavailable if down."""
        try:
            gen, val = self.r.eval(  # type: ignore[misc]
                ACQUIRE, 2, self.keys.lease(self.symbol), self.keys.generation(self.symbol),
                self.owner, self.pid, self.ttl_ms, min_generation,
            )
        except redis.RedisError as exc:
            raise RedisUnavailable(f"lease {self.symbol}: {exc}") from exc
        if int(gen) == 0:
            holder = LeaseInfo.parse(str(val))
            raise LeaseError(
                f"{self.symbol} is leased by another live engine (owner {holder.owner}, pid {holder.pid}, "
                f"generation {holder.generation})"
            )
        self.generation, self.token = int(gen), str(val)
        return self.generation

    def renew_args(self) -> tuple[str, str, int, int]:
        return self.keys.lease(self.symbol), self.token, self.ttl_ms, self.generation

    def release(self) -> None:
        if self.token:
            self.r.eval(RELEASE, 1, self.keys.lease(self.symbol), self.token)
