"""What every handler is given (built once in ``main``, held in the Application's ``bot_data``), who
may do what, and the reply helper."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import cast

import redis
import redis.asyncio as aioredis
from telegram import Message, Update
from telegram.ext import ContextTypes

from backend.src.bot.confirm import Confirmations
from backend.src.bot.views import chunks
from backend.src.core.keys import Keys
from backend.src.core.settings import Settings

log = logging.getLogger(__name__)
SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")


@dataclass
class Access:
    """Chats the bot answers at all, and users allowed to control. Anyone else is ignored and logged
    once per chat or user (a stranger's flood is not a log flood)."""

    chats: frozenset[int]
    admins: frozenset[int]
    logged: set[tuple[str, int]] = field(default_factory=set)

    def refuse(self, kind: str, ident: int, what: str) -> None:
        if (kind, ident) not in self.logged:
            self.logged.add((kind, ident))
            log.warning("ignored %s from %s %s (not in the allow-list); further ones are not logged", what, kind,
                        ident, extra={"telegram_" + kind: ident})


@dataclass
class Deps:
    settings: Settings
    keys: Keys
    r: aioredis.Redis  # reads and confirmations
    sync: redis.Redis  # the command stream's one pipeline and the global stop (run in a thread)
    access: Access
    confirms: Confirmations


def deps(ctx: ContextTypes.DEFAULT_TYPE) -> Deps:
    return cast(Deps, ctx.bot_data["deps"])


async def reply(update: Update, text: str) -> None:
    msg = cast(Message, update.effective_message)
    for part in chunks(text):
        await msg.reply_text(part, do_quote=False)


def symbol_arg(args: list[str] | None) -> str | None:
    """The first argument as a symbol (upper-cased), or None when missing or malformed."""
    if not args:
        return None
    sym = args[0].upper().replace("/", "")
    return sym if SYMBOL.match(sym) else None
