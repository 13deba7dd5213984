"""A token bucket in Redis, shared by every worker that calls one API.

The bucket refills at ``rate`` tokens per second up to ``burst``. A 429 with Retry-After
blocks the whole bucket until then, so every worker backs off, not only the one that was told.
Time comes from the Redis server (``TIME``), so workers on several hosts agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

# KEYS[1] bucket; ARGV: rate/s, burst, cost. Returns milliseconds to wait (0 = granted).
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'blocked_until')
local blocked = tonumber(h[3]) or 0
if blocked > now then return blocked - now end
local tokens = tonumber(h[1]) or burst
local ts = tonumber(h[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = math.ceil((cost - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.max(60000, math.ceil(burst * 1000 / rate) * 2))
return wait
"""

# KEYS[1] bucket; ARGV[1] milliseconds to block everyone.
BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('HGET', KEYS[1], 'blocked_until')) or 0
if until_ms > cur then redis.call('HSET', KEYS[1], 'blocked_until', until_ms, 'tokens', 0, 'ts', until_ms) end
redis.call('PEXPIRE', KEYS[1], math.max(60000, tonumber(ARGV[1]) * 2))
return until_ms
"""


class RateLimited(Exception):
    """The bucket would make us wait longer than the caller allows."""


class TokenBucket:
    def __init__(self, r: redis.Redis, key: str, per_minute: float, burst: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.r = r
        self.key = key
        self.rate = per_minute / 60.0
        self.burst = burst if burst is not None else max(1.0, per_minute / 6.0)  # 10 s worth
        self.sleep = sleep
        self._take = r.register_script(TAKE)
        self._block = r.register_script(BLOCK)

    def try_take(self, cost: float = 1.0) -> float:
        """Seconds to wait before trying again; 0.0 means a token was taken."""
        return int(self._take(keys=[self.key], args=[self.rate, self.burst, cost])) / 1000.0

    def acquire(self, cost: float = 1.0, max_wait_s: float = 60.0) -> float:
        """Block until a token is ours; returns the time waited. RateLimited past ``max_wait_s``."""
        waited = 0.0
        while True:
            wait = self.try_take(cost)
            if wait <= 0:
                return waited
            if waited + wait > max_wait_s:
                raise RateLimited(f"{self.key}: next token in {wait:.1f}s exceeds the {max_wait_s:.0f}s budget")
            self.sleep(wait)
            waited += wait

    def block(self, seconds: float) -> None:
        """Everyone waits ``seconds`` (the API said Retry-After)."""
        self._block(keys=[self.key], args=[max(1, int(seconds * 1000))])
