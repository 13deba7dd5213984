"""Long polling with the offset kept in Redis: nothing lost, nothing carried out twice.

Telegram forgets an update once ``getUpdates`` is called with a higher offset. python-telegram-bot's
own poller asks for the next batch while the last one is still being handled, so a bot killed then
loses those updates. Here the offset only moves past an update after it was handled, and is
recorded in Redis (``Keys.bot_offset``, per bot) at once: a restarted bot (``kill -9`` included) asks again
from the first update it had not finished. Handling one twice is harmless: control commands are
queued under an id derived from the update (``Keys.chat_command_id``) and confirmations live in Redis.
What can repeat is a reply, when the bot dies between Telegram accepting it and the offset write.

Updates are handled one at a time, in order. A handler that failed on a transient error (the Bot API
down, 5xx, a timeout, flood control beyond the rate limiter's retries) is handled again with backoff;
any other failure is logged and the update is passed over.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from telegram import Update
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, ContextTypes

from backend.src.core.keys import Keys
from backend.src.core.retry import telegram_retry_after_s

log = logging.getLogger(__name__)
TRANSIENT = (NetworkError, RetryAfter)  # NetworkError covers TimedOut and the Bot API's 5xx
HANDLE_ATTEMPTS = 6  # about a minute of backoff (1, 2, 4, 8, 16, 30 s) before an update is passed over
MAX_BACKOFF_S = 30.0


class Poller:
    def __init__(self, app: Application, r: aioredis.Redis, keys: Keys, timeout_s: float) -> None:  # type: ignore[type-arg]
        self.app, self.r, self.keys, self.timeout_s = app, r, keys, timeout_s
        self.failure: BaseException | None = None
        self.handled = 0
        self.next: int | None = None
        self.loaded = False
        app.add_error_handler(self.on_error)

    async def on_error(self, update: object, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        self.failure = ctx.error
        if not isinstance(ctx.error, TRANSIENT):
            log.error("command failed: %s: %s", type(ctx.error).__name__, ctx.error, exc_info=ctx.error)

    async def offset(self) -> int | None:
        """The next update to handle: read from Redis once, then kept here (this process is its only
        writer: one bot per token)."""
        if not self.loaded:
            raw = await self.r.get(self.keys.bot_offset(self.app.bot.id))
            self.next, self.loaded = (int(raw) if raw else None), True
        return self.next

    async def run(self) -> None:
        failures = 0
        log.info("polling for updates from offset %s", await self.offset())
        webhook_off = False
        while True:
            try:
                if not webhook_off:  # getUpdates is refused (409) while a webhook is set
                    webhook_off = await self.app.bot.delete_webhook()
                updates = await self.app.bot.get_updates(offset=self.next, timeout=int(self.timeout_s),
                                                         read_timeout=self.timeout_s + 10,
                                                         allowed_updates=["message", "callback_query"])
                failures = 0
            except InvalidToken:
                raise  # the token is wrong: exit, the manager's backoff decides when to try again
            except (TelegramError, ValueError) as exc:
                failures += 1
                await asyncio.sleep(self.backoff(exc, failures))
                continue
            for update in updates:
                await self.deliver(update)

    async def deliver(self, update: Update) -> bool:
        """Handle an update not handled before and record it as done; False for one already done (a
        webhook delivery Telegram repeats)."""
        done = await self.offset()
        if done is not None and update.update_id < done:
            return False
        await self.handle(update)
        await self.r.set(self.keys.bot_offset(self.app.bot.id), update.update_id + 1)
        self.next = update.update_id + 1
        self.handled += 1
        return True

    def backoff(self, exc: BaseException, failures: int) -> float:
        hinted = telegram_retry_after_s(exc)
        wait = hinted if hinted is not None else min(MAX_BACKOFF_S, 2.0 ** (failures - 1))
        level = logging.INFO if failures == 1 else logging.WARNING
        if isinstance(exc, Conflict):
            level = logging.ERROR  # another bot polls with this token, or a webhook is set
        log.log(level, "getUpdates failed (%s: %s); retry in %.1fs", type(exc).__name__, exc, wait)
        return wait

    async def handle(self, update: Update) -> None:
        for attempt in range(1, HANDLE_ATTEMPTS + 1):
            self.failure = None
            await self.app.process_update(update)
            if not isinstance(self.failure, TRANSIENT):
                return
            hinted = telegram_retry_after_s(self.failure)
            wait = hinted if hinted is not None else min(MAX_BACKOFF_S, 2.0 ** (attempt - 1))
            log.warning("update %d: %s (%s); handling it again in %.1fs", update.update_id,
                        type(self.failure).__name__, self.failure, wait)
            await asyncio.sleep(wait)
        log.error("update %d passed over after %d attempts: %s", update.update_id, HANDLE_ATTEMPTS, self.failure)
