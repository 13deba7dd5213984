"""Local stand-ins for the Telegram Bot API and Slack incoming webhooks, on loopback.

They speak the real wire formats (Telegram: ``POST /bot<token>/sendMessage`` answering
``{"ok": true, "result": {...}}`` or ``{"ok": false, "error_code": 429, "description": ...,
"parameters": {"retry_after": N}}``; Slack: ``POST /services/...`` answering ``ok`` or an
error string with a status code and ``Retry-After``) and can be told to misbehave.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def parse_body(headers: Message, body: bytes) -> dict[str, Any]:
    """A Bot API request's parameters, however sent: JSON, a form (values JSON-decoded where they
    are JSON, as Telegram reads them) or multipart (a file as its size and whether it is a PNG)."""
    kind = headers.get("Content-Type", "")
    if kind.startswith("application/x-www-form-urlencoded"):
        return {k: _value(v) for k, v in urllib.parse.parse_qsl(body.decode())}
    if kind.startswith("multipart/form-data"):
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {kind}\r\n\r\n".encode() + body)
        out: dict[str, Any] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            out[str(name)] = {"bytes": len(data), "png": data[:8] == b"\x89PNG\r\n\x1a\n"} if part.get_filename() \
                else _value(data.decode())
        return out
    return json.loads(body or b"{}")  # type: ignore[no-any-return]


def _value(v: str) -> Any:
    try:
        return json.loads(v) if v[:1] in "{[tfn" or v.lstrip("-").isdigit() else v
    except ValueError:
        return v


def loopback_server(serve: Callable[[BaseHTTPRequestHandler, dict[str, Any]], None]) -> ThreadingHTTPServer:
    """A quiet HTTP server on a free loopback port handing each request (GET or POST) and its parsed
    parameters to ``serve``; started in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            serve(self, parse_body(self.headers, self.rfile.read(int(self.headers.get("Content-Length") or 0))))

        do_GET = do_POST  # noqa: N815

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


class ChatServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.plan: deque[str] = deque()  # next behaviours: ok | 429 | 500 | malformed | slow | 404
        self.lock = threading.Lock()
        self.httpd = loopback_server(self.serve)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def serve(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        with self.lock:
            mode = self.plan.popleft() if self.plan else "ok"
            self.requests.append({"path": h.path, "body": body, "mode": mode, "at": time.monotonic()})
        if h.path.startswith("/bot"):
            self.telegram(h, mode)
        elif h.path.startswith("/api/webhooks/"):
            self.discord(h, mode)
        else:
            self.slack(h, mode)

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        h.send_response(code)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def telegram(self, h: BaseHTTPRequestHandler, mode: str) -> None:
        if mode == "slow":
            time.sleep(3)
        if mode == "429":
            self._reply(h, 429, json.dumps({"ok": False, "error_code": 429,
                                            "description": "Too Many Requests: retry after 1",
                                            "parameters": {"retry_after": 1}}).encode())
        elif mode == "500":
            self._reply(h, 502, b"<html>Bad Gateway</html>")
        elif mode == "malformed":
            self._reply(h, 200, b'{"ok": tru')
        elif mode == "404":
            self._reply(h, 400, json.dumps({"ok": False, "error_code": 400,
                                            "description": "Bad Request: chat not found"}).encode())
        else:
            msg = {"message_id": len(self.requests), "date": int(time.time()), "chat": {"id": 1, "type": "private"}}
            self._reply(h, 200, json.dumps({"ok": True, "result": msg}).encode())

    def slack(self, h: BaseHTTPRequestHandler, mode: str) -> None:
        if mode == "slow":
            time.sleep(3)
        if mode == "429":
            self._reply(h, 429, b"rate_limited", {"Retry-After": "1"})
        elif mode == "500":
            self._reply(h, 500, b"internal_error")
        elif mode == "404":
            self._reply(h, 404, b"no_service")
        else:
            self._reply(h, 200, b"ok")

    def discord(self, h: BaseHTTPRequestHandler, mode: str) -> None:
        """Discord's execute-webhook: 204 without a body; 429 says its wait in the JSON body (seconds, a float)."""
        if mode == "slow":
            time.sleep(3)
        if mode == "429":
            self._reply(h, 429, json.dumps({"message": "You are being rate limited.", "retry_after": 0.25,
                                            "global": False}).encode(), {"Content-Type": "application/json"})
        elif mode == "500":
            self._reply(h, 502, b"<html>Bad Gateway</html>")
        elif mode == "malformed":  # a proxy answering 200 with garbage: Discord never does; a 2xx is taken
            self._reply(h, 200, b"\x00garbage")
        elif mode == "404":
            self._reply(h, 404, json.dumps({"message": "Unknown Webhook", "code": 10015}).encode())
        else:
            h.send_response(204)
            h.end_headers()

    def texts(self) -> list[str]:
        with self.lock:
            return [r["body"].get("text") or r["body"].get("content", "") for r in self.requests if r["mode"] == "ok"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
