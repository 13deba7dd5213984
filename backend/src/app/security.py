"""Who may read and who may act, and the headers every answer carries.

- Control (every POST) needs ``Authorization: Bearer $LEVIBOT_API_TOKEN``; with no token set it is off (403).
- Reading is open while the API listens on loopback only; bound beyond it (``LEVIBOT_API_HOST=0.0.0.0``),
  reading needs the token too. The dashboard keeps the token in the tab's sessionStorage and sends it
  as this header (its live feed is read with ``fetch``, not ``EventSource``, so the token never goes
  into a URL); no cookie is ever set.
- Headers: a strict Content-Security-Policy (scripts and styles from this origin only, no inline
  script, no framing), ``X-Frame-Options: DENY``, ``nosniff``, no referrer.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import Header, HTTPException, Request

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


def check_token(request: Request, authorization: str | None) -> None:
    token = request.app.state.settings.api_token
    if token is None or not token.get_secret_value():
        raise HTTPException(403, "control endpoints are disabled: set LEVIBOT_API_TOKEN")
    expected = f"Bearer {token.get_secret_value()}"
    if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    check_token(request, authorization)


def require_reader(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    if not loopback(request.app.state.settings.api_host):
        check_token(request, authorization)
