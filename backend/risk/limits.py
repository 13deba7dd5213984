"""Portfolio limits across engines, enforced atomically in Redis (Lua).

A position slot per symbol lives in one hash: ``symbol -> group|exposure_usd|holder``, the exposure
signed (a short is negative). Opening a position first reserves its slot; the script counts live
slots and refuses if the total, the correlation group (longs and shorts alike), the symbol's
exposure, or the portfolio's gross (sum of sizes) or net (longs minus shorts) exposure would go
over the policy. The
holder is the symbol's lease key: a slot whose lease is gone (its engine was ``kill -9``ed
and not restarted) is freed by the next call, so a dead engine never leaks a slot.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from backend.src.core.keys import Keys

RESERVE = """
local slots = redis.call('HGETALL', KEYS[1])
local total, ingroup, gross, net = 0, 0, 0, 0
local mine = tonumber(ARGV[4])
for i = 1, #slots, 2 do
  local sym, val = slots[i], slots[i + 1]
  local grp, expo = string.match(val, '^([^|]*)|([^|]*)|')
  if redis.call('EXISTS', ARGV[1] .. 'lease:' .. sym) == 0 then
    redis.call('HDEL', KEYS[1], sym)
  elseif sym ~= ARGV[2] then
    total = total + 1
    if grp ~= '' and grp == ARGV[3] then ingroup = ingroup + 1 end
    local e = tonumber(expo) or 0
    gross = gross + math.abs(e)
    net = net + e
  end
end
if math.abs(mine) > tonumber(ARGV[7]) then return {0, 'max_symbol_exposure', total, ingroup} end
if total + 1 > tonumber(ARGV[5]) then return {0, 'max_concurrent_positions', total, ingroup} end
if ARGV[3] ~= '' and ingroup + 1 > tonumber(ARGV[6]) then
  return {0, 'max_correlated_positions', total, ingroup}
end
if tonumber(ARGV[9]) > 0 and gross + math.abs(mine) > tonumber(ARGV[9]) then
  return {0, 'max_gross_exposure', total, ingroup}
end
if tonumber(ARGV[10]) > 0 and math.abs(net + mine) > tonumber(ARGV[10]) and math.abs(net + mine) > math.abs(net) then
  return {0, 'max_net_exposure', total, ingroup}
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3] .. '|' .. ARGV[4] .. '|' .. ARGV[8])
if ARGV[3] ~= '' then ingroup = ingroup + 1 end
return {1, 'ok', total + 1, ingroup}
"""

RELEASE = """
local val = redis.call('HGET', KEYS[1], ARGV[1])
if val and string.sub(val, -string.len(ARGV[2])) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # ok | max_concurrent_positions | max_correlated_positions | max_symbol_exposure | max_gross_exposure
    #              | max_net_exposure
    total: int  # open slots after the call (incl. this one when allowed)
    in_group: int


class PortfolioLimits:
    def __init__(self, r: redis.Redis, keys: Keys) -> None:
        self.r, self.keys = r, keys

    def reserve(self, symbol: str, holder: str, *, group: str, exposure_usd: float, max_exposure_usd: float,
                max_total: int, max_group: int, max_gross_usd: float = 0.0, max_net_usd: float = 0.0) -> Decision:
        """Reserve ``symbol``'s slot for a signed ``exposure_usd`` (0 limits: off)."""
        ok, reason, total, in_group = self.r.eval(  # type: ignore[misc]
            RESERVE, 1, self.keys.risk_slots, self.keys.ns, symbol, group, f"{exposure_usd:.6f}", max_total, max_group,
            f"{max_exposure_usd:.6f}", holder, f"{max_gross_usd:.6f}", f"{max_net_usd:.6f}")
        return Decision(bool(ok), str(reason), int(total), int(in_group))

    def release(self, symbol: str, holder: str) -> bool:
        return bool(self.r.eval(RELEASE, 1, self.keys.risk_slots, symbol, holder))

    def slots(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.r.hgetall(self.keys.risk_slots).items()}  # type: ignore[union-attr]
