"""Webhook mode (``LEVIBOT_TELEGRAM_WEBHOOK_URL``): Telegram posts each update to the bot instead of
being polled.

At start the bot registers the URL with a fresh secret (``setWebhook``: ``secret_token``, one
connection at a time so updates arrive in order) and listens on ``LEVIBOT_TELEGRAM_WEBHOOK_LISTEN``
: ``LEVIBOT_TELEGRAM_WEBHOOK_PORT`` behind the user's TLS proxy (Telegram only calls HTTPS URLs).
A request without the secret header is refused (403). An update is answered 200 once handled and
recorded (``Poller.deliver``: the same offset in Redis as polling); one Telegram delivers again is
acknowledged and not handled twice; anything unreadable gets a 400, which Telegram does not retry.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI, Request, Response
from telegram import Update

from backend.src.bot.poller import Poller
from backend.src.core.settings import Settings

log = logging.getLogger(__name__)
HEADER = "X-Telegram-Bot-Api-Secret-Token"


def build(poller: Poller, path: str, secret: str) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    lock = asyncio.Lock()

    @app.post(path or "/")
    async def receive(request: Request) -> Response:
        if not hmac.compare_digest(request.headers.get(HEADER, ""), secret):
            return Response("forbidden", status_code=403)
        try:
            update = Update.de_json(await request.json(), poller.app.bot)
        except (ValueError, TypeError, KeyError):
            return Response("not an update", status_code=400)
        async with lock:  # one at a time, in the order they come
            fresh = await poller.deliver(update)
        return Response("ok" if fresh else "already handled", status_code=200)

    return app


async def serve(poller: Poller, settings: Settings) -> None:
    url = settings.telegram_webhook_url or ""
    secret = secrets.token_urlsafe(32)
    await poller.app.bot.set_webhook(url, secret_token=secret, max_connections=1,
                                     allowed_updates=["message", "callback_query"])
    host, port = settings.telegram_webhook_listen, settings.telegram_webhook_port
    log.info("webhook set to %s; listening on %s:%d", urlsplit(url)._replace(query="").geturl(), host, port)
    server = uvicorn.Server(uvicorn.Config(build(poller, urlsplit(url).path, secret), host=host, port=port,
                                           log_level="warning", access_log=False, lifespan="off"))
    await server.serve()
