"""``python -m backend.src.bot``: the Telegram bot, started and restarted by the manager when
``LEVIBOT_TELEGRAM_BOT_TOKEN`` is set (``--no-bot`` to skip).

Built on python-telegram-bot (its Bot API client, handlers and rate limiter); the updates are
polled by ``poller.py`` so that none is lost across a restart, or posted to ``webhook.py`` when
``LEVIBOT_TELEGRAM_WEBHOOK_URL`` is set. Only the chats in
``LEVIBOT_TELEGRAM_CHAT_ID`` are answered; control is for the users in ``LEVIBOT_TELEGRAM_ADMINS``.
The token reaches only this process and the manager's alerts, and is blanked out of every log line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import NoReturn

from pydantic import ValidationError
from telegram import BotCommand, Update
from telegram.error import InvalidToken, NetworkError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import HTTPXRequest

from backend.src.bot import control, reads, webhook
from backend.src.bot.confirm import Confirmations
from backend.src.bot.deps import Access, Deps, deps
from backend.src.bot.poller import MAX_BACKOFF_S, Poller
from backend.src.bot.views import COMMANDS
from backend.src.core import logging_setup
from backend.src.core.errors import EXIT_OK, EXIT_USAGE
from backend.src.core.keys import Keys
from backend.src.core.redis_launcher import discover_url
from backend.src.core.redis_url import connect, connect_async
from backend.src.core.settings import Settings

log = logging.getLogger(__name__)
EXIT_TOKEN = 3  # the Bot API refused the token

HANDLERS = {
    "status": reads.status, "engines": reads.engines, "pnl": reads.pnl_command, "positions": reads.positions,
    "risk": reads.risk, "strategy": reads.strategy, "model": reads.model, "parity": reads.parity,
    "help": reads.help_command,
    "start": control.start, "restart": control.restart, "stop": control.stop, "globalstop": control.globalstop,
    "clearstop": control.clearstop, "promote": control.promote, "rollback": control.rollback,
}


async def gate(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    """Before any handler: updates from chats outside the allow-list go no further."""
    chat = update.effective_chat
    if chat is None or chat.id not in deps(ctx).access.chats:
        deps(ctx).access.refuse("chat", chat.id if chat else 0, "an update")
        raise ApplicationHandlerStop


def build(settings: Settings, d: Deps) -> Application:  # type: ignore[type-arg]
    token = d.settings.telegram_bot_token
    assert token is not None  # noqa: S101 - checked in main
    timeout = settings.alert_timeout_s
    app = (Application.builder().token(token.get_secret_value())
           .base_url(f"{settings.telegram_api_base.rstrip('/')}/bot")
           .base_file_url(f"{settings.telegram_api_base.rstrip('/')}/file/bot")
           .request(HTTPXRequest(connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
                                 pool_timeout=timeout, connection_pool_size=8))
           .get_updates_request(HTTPXRequest(connect_timeout=timeout, pool_timeout=timeout))
           # under Telegram's limits (30 messages a second in all, 20 a minute in one group), with a margin
           # for clocks; a 429 that still comes is waited out (its retry_after) and sent again
           .rate_limiter(AIORateLimiter(overall_max_rate=25, overall_time_period=1, group_max_rate=20,
                                        group_time_period=60, max_retries=3))
           .updater(None).build())
    app.bot_data["deps"] = d
    app.add_handler(TypeHandler(Update, gate), group=-1)
    for name, fn in HANDLERS.items():
        app.add_handler(CommandHandler(name, fn))
    app.add_handler(CallbackQueryHandler(control.button, pattern=r"^(ok|no):[0-9a-f]{16}$"))
    app.add_handler(MessageHandler(filters.COMMAND, reads.unknown))
    return app


async def run(settings: Settings) -> int:
    os.environ.setdefault("PTB_TIMEDELTA", "true")  # see core/retry.telegram_retry_after_s
    url = discover_url(settings)
    keys = Keys(settings.namespace)
    r = connect(url, timeout=5.0)
    ar = connect_async(url, timeout=5.0, connect_timeout=2.0)
    d = Deps(settings, keys, ar, r, Access(frozenset(settings.telegram_chats), frozenset(settings.telegram_admin_ids)),
             Confirmations(ar, keys, settings.telegram_confirm_s))
    app = build(settings, d)
    poller = Poller(app, ar, keys, settings.telegram_poll_timeout_s)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        if not await connect_bot(app, stopping):
            return EXIT_OK
        await app.start()
        try:
            await app.bot.set_my_commands([BotCommand(c.split()[0], t[:256]) for c, t in COMMANDS])
        except Exception as exc:  # a menu is a nicety: the commands work without it
            log.warning("setMyCommands failed: %s", exc)
        log.info("bot up as @%s: %d chats, %d admins", app.bot.username, len(d.access.chats), len(d.access.admins))
        task = asyncio.create_task(webhook.serve(poller, settings) if settings.telegram_webhook_url else poller.run())
        stop_wait = asyncio.create_task(stopping.wait())
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()  # an update being handled is not recorded as done: handled again at the next start
        stop_wait.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        log.info("bot stopped after %d updates", poller.handled)
        return EXIT_OK
    except InvalidToken:
        log.error("the Bot API refused the token (LEVIBOT_TELEGRAM_BOT_TOKEN)")
        return EXIT_TOKEN
    finally:
        if app.running:
            await app.stop()
        await app.shutdown()
        await ar.aclose()
        r.close()


async def connect_bot(app: Application, stopping: asyncio.Event) -> bool:  # type: ignore[type-arg]
    """``getMe`` (the token is checked here), waiting out an unreachable Bot API (a host booting
    before its network) with backoff; False when asked to stop meanwhile."""
    failures = 0
    while not stopping.is_set():
        try:
            await app.initialize()
            return True
        except NetworkError as exc:
            failures += 1
            wait = min(MAX_BACKOFF_S, 2.0 ** (failures - 1))
            log.log(logging.WARNING if failures > 1 else logging.INFO,
                    "Bot API unreachable (%s: %s); trying again in %.0fs", type(exc).__name__, exc, wait)
            try:
                await asyncio.wait_for(stopping.wait(), wait)
            except TimeoutError:
                pass
    return False


def main(argv: list[str] | None = None) -> int:
    del argv
    try:
        settings = Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        print(f"levibot-bot: error: LEVIBOT_{'.'.join(map(str, err['loc'])).upper()}: {err['msg']}", file=sys.stderr)
        return EXIT_USAGE
    if settings.telegram_bot_token is None:
        print("levibot-bot: error: LEVIBOT_TELEGRAM_BOT_TOKEN is not set", file=sys.stderr)
        return EXIT_USAGE
    if not settings.telegram_chats:
        print("levibot-bot: error: LEVIBOT_TELEGRAM_CHAT_ID is not set (the bot answers only the chats listed)",
              file=sys.stderr)
        return EXIT_USAGE
    logging_setup.configure(settings.log_dir, "bot", level=settings.log_level,
                            retention_days=settings.log_retention_days,
                            secrets=[settings.telegram_bot_token.get_secret_value()])
    return asyncio.run(run(settings))


def main_exit() -> NoReturn:
    sys.exit(main())
