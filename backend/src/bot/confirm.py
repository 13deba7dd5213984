"""Confirm buttons for destructive commands, kept in Redis so a restarted bot still honours them.

Asking stores the command (``Keys.bot_confirm(token)``: action, argument, chat, user, ``expires_at``)
and the message shows two inline buttons whose ``callback_data`` is ``ok:<token>`` / ``no:<token>``.
A press is decided in one Lua call: only the admin who asked, in the same chat, before ``expires_at``;
the first decision sticks (``confirmed`` or ``cancelled``). A press handled again after a restart sees
``confirmed`` and carries the command out again under the same command id (``core/commands.send``),
which queues it at most once.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from backend.src.core.keys import Keys

KEPT_S = 3600  # a decided or expired confirmation is remembered this long (then "unknown")

# KEYS: the confirmation; ARGV: now, user, chat, decision (confirmed | cancelled)
DECIDE = """
local c = redis.call('HMGET', KEYS[1], 'status', 'expires_at', 'user', 'chat')
if not c[1] then return 'unknown' end
if c[3] ~= ARGV[2] or c[4] ~= ARGV[3] then return 'not_yours' end
if c[1] ~= 'pending' then return c[1] end
if tonumber(c[2]) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'status', 'expired')
  return 'expired'
end
redis.call('HSET', KEYS[1], 'status', ARGV[4])
return ARGV[4]
"""


@dataclass(frozen=True)
class Pending:
    token: str
    action: str
    arg: str
    chat: int
    user: int


class Confirmations:
    def __init__(self, r: aioredis.Redis, keys: Keys, life_s: float, clock: Callable[[], float] = time.time) -> None:
        self.r, self.keys, self.life_s, self.clock = r, keys, life_s, clock

    async def ask(self, action: str, arg: str, chat: int, user: int) -> str:
        token = secrets.token_hex(8)
        key = self.keys.bot_confirm(token)
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(key, mapping={"action": action, "arg": arg, "chat": str(chat), "user": str(user),
                                "status": "pending", "expires_at": f"{self.clock() + self.life_s:.3f}"})
        pipe.expire(key, int(self.life_s) + KEPT_S)
        await pipe.execute()
        return token

    async def decide(self, token: str, user: int, chat: int, confirm: bool) -> tuple[str, Pending | None]:
        """(status, the command): status is ``confirmed``/``cancelled`` (now or before), ``expired``,
        ``not_yours`` or ``unknown``."""
        key = self.keys.bot_confirm(token)
        status = str(await self.r.eval(DECIDE, 1, key, f"{self.clock():.3f}", str(user), str(chat),  # type: ignore[misc]
                                       "confirmed" if confirm else "cancelled"))
        if status not in ("confirmed", "cancelled"):
            return status, None
        f = {str(k): str(v) for k, v in (await self.r.hgetall(key)).items()}  # type: ignore[misc]
        return status, Pending(token, f["action"], f.get("arg", ""), int(f["chat"]), int(f["user"]))
