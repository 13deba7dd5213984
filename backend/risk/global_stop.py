"""Portfolio-wide daily-loss stop, checked atomically in Redis by every engine's heartbeat.

The flag ``risk:global_stop`` = ``<UTC day>|<reason>`` has no TTL: an engine restarted after
the trigger still sees it. It clears when an engine's day moves past the flag's day, or by an
operator (``clear``), which also holds the trigger off for the rest of that day.
"""

from __future__ import annotations

import time

import redis

from backend.src.core.keys import Keys

# KEYS: engines set, flag, operator override, events stream, policy hash
# ARGV: namespace, day, max_daily_loss_pct, symbol, now
CHECK = """
local flag = redis.call('GET', KEYS[2])
if flag then
  local fday = string.match(flag, '^([^|]*)|')
  if fday < ARGV[2] then
    redis.call('DEL', KEYS[2])
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', 10000, '*', 'type', 'global_stop_cleared', 'symbol', '',
               'reason', 'new UTC day ' .. ARGV[2], 'ts', ARGV[5])
    flag = false
  end
end
if not flag and redis.call('GET', KEYS[3]) ~= ARGV[2] then
  local pnl, eq = 0, 0
  for _, s in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local v = redis.call('HMGET', ARGV[1] .. 'engine:' .. s, 'daily_pnl', 'equity', 'day')
    if v[3] == ARGV[2] then
      pnl = pnl + (tonumber(v[1]) or 0)
      eq = eq + (tonumber(v[2]) or 0)
    end
  end
  local open = eq - pnl
  if open > 0 and pnl < -tonumber(ARGV[3]) / 100 * open then
    local reason = string.format('portfolio daily PnL %.2f is below -%s%% of %.2f', pnl, ARGV[3], open)
    flag = ARGV[2] .. '|' .. reason
    redis.call('SET', KEYS[2], flag)
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', 10000, '*', 'type', 'global_stop', 'symbol', ARGV[4],
               'reason', reason, 'ts', ARGV[5])
  end
end
return {flag or '', redis.call('HGET', KEYS[5], 'version') or ''}
"""


def check(r: redis.Redis, keys: Keys, *, day: str, max_daily_loss_pct: float, symbol: str) -> tuple[str, str]:
    """(flag or '', policy version) after (maybe) triggering or clearing the stop."""
    flag, version = r.eval(  # type: ignore[misc]
        CHECK, 5, keys.engines, keys.global_stop, keys.global_stop_override, keys.events, keys.risk_policy,
        keys.ns, day, f"{max_daily_loss_pct}", symbol, f"{time.time():.3f}")
    return str(flag), str(version)


def clear(r: redis.Redis, keys: Keys, *, by: str, day: str) -> bool:
    """Operator clear: drop the flag and hold the trigger off for the rest of ``day``."""
    pipe = r.pipeline(transaction=True)
    pipe.get(keys.global_stop)
    pipe.delete(keys.global_stop)
    pipe.set(keys.global_stop_override, day, ex=2 * 86_400)
    pipe.xadd(keys.events, {"type": "global_stop_cleared", "symbol": "", "reason": f"cleared by {by}",
                            "ts": f"{time.time():.3f}"}, maxlen=10_000, approximate=True)
    was, *_ = pipe.execute()
    return was is not None


def clear_current(r: redis.Redis, keys: Keys, *, by: str) -> tuple[bool, str]:
    """Operator clear of whatever stop is set (held off for the flag's day, else today's, UTC):
    (whether one was set, that day)."""
    flag = r.get(keys.global_stop)
    day = (str(flag) if flag else "").partition("|")[0] or time.strftime("%Y-%m-%d", time.gmtime())
    return clear(r, keys, by=by, day=day), day


def engage(r: redis.Redis, keys: Keys, *, by: str, now: float | None = None) -> bool:
    """Operator stop: no new entries fleet-wide (engines flatten as on a loss trigger) until cleared or
    the next UTC day. False when a stop was already set (it is left as it was)."""
    at = time.time() if now is None else now
    # the flag clears when an engine's trading day passes it: the latest day any engine is in (replays
    # and synthetic feeds keep their own calendar), at least today's
    symbols = sorted(str(s) for s in r.smembers(keys.engines))  # type: ignore[union-attr]
    days = [str(d) for d in (r.hget(keys.state(s), "day") for s in symbols) if d]
    day = max([time.strftime("%Y-%m-%d", time.gmtime(at)), *days])
    reason = f"manual stop by {by}"
    if not r.set(keys.global_stop, f"{day}|{reason}", nx=True):
        return False
    r.xadd(keys.events, {"type": "global_stop", "symbol": "", "reason": reason, "ts": f"{at:.3f}"},
           maxlen=10_000, approximate=True)
    return True
