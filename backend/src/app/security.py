"""Who may read and who may act, and the headers every answer carries.

- Control (every POST) needs ``Authorization: Bearer $LEVIBOT_API_TOKEN``; with no token set it is off (403).
  ``POST /signals/{symbol}`` is the exception: each signal is authenticated by its source's own secret
  (``core/signals.py``), and its body is capped at 16 KiB.
- Reading is open while the API listens on loopback only; bound beyond it (``LEVIBOT_API_HOST=0.0.0.0``),
  reading needs the token too. The dashboard keeps the token in the tab's sessionStorage and sends it
  as this header (its live feed is read with ``fetch``, not ``EventSource``, so the token never goes
  into a URL); no cookie is ever set.
- Headers: a strict Content-Security-Policy (scripts and styles from this origin only, no inline
  script, no framing), ``X-Frame-Options: DENY``, ``nosniff``, no referrer.
- Bodies (``BodyGuard``): a POST is refused before its body is read when its token is wrong (401/403),
  when its ``Content-Length`` is over ``LEVIBOT_API_MAX_BODY_BYTES`` (413), and when the body grows past
  it while being read (413, chunked uploads); a client that sends it slower than
  ``LEVIBOT_API_BODY_TIMEOUT_S`` in all is cut off (408). Nothing over the limit is ever held in memory.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import Header, HTTPException, Request

from backend.src.core.signals import MAX_BODY

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
           (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"cross-origin-opener-policy", b"same-origin")]


class SecurityHeaders:
    """Pure ASGI middleware (streams, such as the live feed, pass through unbuffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_refusal(settings: Any, authorization: str | None) -> tuple[int, str] | None:
    """Why a request's ``Authorization`` does not grant control (status, detail), or None when it does.
    The scheme is case-insensitive (RFC 7235: ``bearer`` is ``Bearer``); the token is compared in constant time."""
    token = settings.api_token
    if token is None or not token.get_secret_value():
        return 403, "control endpoints are disabled: set LEVIBOT_API_TOKEN"
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        return 401, "missing or wrong bearer token"
    return None


def check_token(request: Request, authorization: str | None) -> None:
    refused = token_refusal(request.app.state.settings, authorization)
    if refused is not None:
        raise HTTPException(refused[0], refused[1], headers={"WWW-Authenticate": "Bearer"} if refused[0] == 401
                            else None)


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    check_token(request, authorization)


def require_reader(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    if not loopback(request.app.state.settings.api_host):
        check_token(request, authorization)


class BodyGuard:
    """Pure ASGI middleware: the body of a request is bounded, and a control request's token checked,
    before the application reads a byte of it (module docstring). Within the limit the body is read here,
    under one deadline, and handed to the application whole."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        settings = scope["app"].state.settings
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        signal = scope["path"].startswith("/signals/")  # signed by its source instead (app/signals_api.py)
        if scope["method"] == "POST" and not signal and (refused := token_refusal(settings,
                                                                                  headers.get("authorization"))):
            await reply(send, refused[0], refused[1], {"www-authenticate": "Bearer"} if refused[0] == 401 else {})
            return
        limit = min(settings.api_max_body_bytes, MAX_BODY) if signal else settings.api_max_body_bytes
        try:
            declared = int(headers.get("content-length", "0"))
        except ValueError:
            await reply(send, 400, "Content-Length is not a number")
            return
        if declared > limit:
            await reply(send, 413, f"request body of {declared} bytes; at most {limit} (LEVIBOT_API_MAX_BODY_BYTES)")
            return
        try:
            body = await asyncio.wait_for(read_body(receive, limit), settings.api_body_timeout_s)
        except TooLarge:
            await reply(send, 413, f"request body over {limit} bytes (LEVIBOT_API_MAX_BODY_BYTES)")
            return
        except TimeoutError:
            await reply(send, 408, f"request body not received within {settings.api_body_timeout_s:g}s")
            return
        if body is None:  # the client went away
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)


class TooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def reply(send: Send, status: int, detail: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *((k.encode(), v.encode()) for k, v in (extra or {}).items())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
