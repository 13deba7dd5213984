"""A local Telegram Bot API on loopback, for the bot's tests: the real wire format and its error modes.

``POST /bot<token>/<method>`` with JSON, form or multipart parameters (as python-telegram-bot sends
them), answering ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N, "description":
..., "parameters": {"retry_after": S}}``. ``getUpdates`` behaves as Telegram's: updates below
``offset`` are forgotten (confirmed), the rest come back, oldest first, waiting up to ``timeout``
seconds for one. Messages are rate limited as Telegram documents (30 a second in all, 20 a minute
in a group: a 429 with ``retry_after`` beyond that). ``plan[method]`` makes the next calls of a
method misbehave: ``429`` (retry_after 1), ``502`` (an HTML Bad Gateway), ``garbage`` (200 with a
body that is not JSON), ``slow`` (3 s before answering).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler
from typing import Any

from backend.tests.fakes.chat_servers import loopback_server

BOT_USER = {"id": 777000, "is_bot": True, "first_name": "LeviBot", "username": "levibot_test_bot"}
SENDS = ("sendMessage", "sendPhoto", "editMessageText")


class Bucket:
    """Token bucket: ``rate`` per ``per`` seconds, bursts up to ``rate``."""

    def __init__(self, rate: float, per: float) -> None:
        self.capacity, self.refill = rate, rate / per
        self.tokens, self.at = rate, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.refill)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class BotApi:
    def __init__(self, token: str) -> None:
        self.token = token
        self.cond = threading.Condition()
        self.pending: list[dict[str, Any]] = []  # updates not yet confirmed by an offset
        self.ids = itertools.count(5000)
        self.message_ids = itertools.count(1)
        self.sent: list[dict[str, Any]] = []  # messages, photos and edits the API accepted, in order
        self.calls: list[dict[str, Any]] = []  # every request: method, params, code, at
        self.answered: list[dict[str, Any]] = []  # answerCallbackQuery
        self.plan: dict[str, deque[str]] = defaultdict(deque)
        self.overall = Bucket(30, 1.0)
        self.groups: dict[int, Bucket] = {}
        self.limited = 0  # 429s the rate limit (not the plan) gave
        self.httpd = loopback_server(self.serve)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    # ------------------------------------------------------------------ the test's side
    def _push(self, update: dict[str, Any]) -> int:
        with self.cond:
            update["update_id"] = update.get("update_id") or next(self.ids)
            self.pending.append(update)
            self.cond.notify_all()
            return int(update["update_id"])

    @staticmethod
    def _chat(chat_id: int) -> dict[str, Any]:
        return {"id": chat_id, "type": "private" if chat_id > 0 else "group", "title": "desk"}

    def say(self, chat_id: int, user_id: int, text: str) -> int:
        """A user writes ``text`` in a chat; returns the update id."""
        return self._push(self.message(chat_id, user_id, text))

    def message(self, chat_id: int, user_id: int, text: str) -> dict[str, Any]:
        """An update carrying a user's message (not queued: a webhook test posts it itself)."""
        msg: dict[str, Any] = {"message_id": next(self.message_ids), "date": int(time.time()), "text": text,
                               "chat": self._chat(chat_id), "from": {"id": user_id, "is_bot": False,
                                                                     "first_name": f"user{user_id}"}}
        if text.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return {"message": msg, "update_id": next(self.ids)}

    def press(self, chat_id: int, user_id: int, message: dict[str, Any], data: str) -> int:
        """A user presses an inline button of a message the bot sent."""
        return self._push({"callback_query": {
            "id": str(next(self.ids)), "chat_instance": "42", "data": data,
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
            "message": {"message_id": message["message_id"], "date": int(time.time()), "chat": self._chat(chat_id),
                        "from": BOT_USER, "text": message["text"]}}})

    def to(self, chat_id: int) -> list[dict[str, Any]]:
        with self.cond:
            return [m for m in self.sent if m["chat_id"] == chat_id]

    def wait_sent(self, chat_id: int, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(got := self.to(chat_id)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(got)} of {count} messages to {chat_id} after {timeout}s: {got}")
            time.sleep(0.02)
        return got

    def close(self) -> None:
        with self.cond:
            self.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ the bot's side
    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, code: int, body: bytes, kind: str = "application/json") -> None:
        try:
            h.send_response(code)
            h.send_header("Content-Type", kind)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            pass  # the client went away (a killed bot)

    def _error(self, h: BaseHTTPRequestHandler, code: int, description: str, retry_after: int | None = None) -> None:
        out: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if retry_after is not None:
            out["parameters"] = {"retry_after": retry_after}
        self._reply(h, code, json.dumps(out).encode())

    def serve(self, h: BaseHTTPRequestHandler, params: dict[str, Any]) -> None:
        prefix, _, method = h.path.lstrip("/").partition("/")
        method = method.split("?")[0]
        with self.cond:
            mode = self.plan[method].popleft() if self.plan[method] else "ok"
            self.calls.append({"method": method, "params": params, "mode": mode, "at": time.monotonic()})
        if prefix != f"bot{self.token}":
            self._error(h, 401, "Unauthorized")
            return
        if mode == "slow":
            time.sleep(3)
        elif mode == "429":
            self._error(h, 429, "Too Many Requests: retry after 1", retry_after=1)
            return
        elif mode == "502":
            self._reply(h, 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
            return
        elif mode == "garbage":
            self._reply(h, 200, b"<html>upstream says hi</html>", "text/html")
            return
        if method == "getUpdates":
            self._reply(h, 200, json.dumps({"ok": True, "result": self.updates(params)}).encode())
            return
        if method in SENDS and not self._within_limits(int(params.get("chat_id") or 0)):
            self._error(h, 429, "Too Many Requests: retry after 1", retry_after=1)
            return
        result = self.result(method, params)
        if result is None:
            self._error(h, 404, "Not Found: method not found")
            return
        self._reply(h, 200, json.dumps({"ok": True, "result": result}).encode())

    def _within_limits(self, chat_id: int) -> bool:
        with self.cond:
            group = self.groups.setdefault(chat_id, Bucket(20, 60.0)) if chat_id < 0 else None
            if not self.overall.take() or (group is not None and not group.take()):
                self.limited += 1
                return False
            return True

    def updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset, limit = params.get("offset"), int(params.get("limit") or 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        with self.cond:
            if offset is not None:
                self.pending = [u for u in self.pending if u["update_id"] >= int(offset)]
            while not self.pending and time.monotonic() < deadline:
                self.cond.wait(max(0.0, deadline - time.monotonic()))
            return [dict(u) for u in self.pending[:limit]]

    def result(self, method: str, p: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method in ("setMyCommands", "deleteWebhook", "setWebhook"):
            return True
        if method == "answerCallbackQuery":
            with self.cond:
                self.answered.append(p)
            return True
        if method not in SENDS:
            return None
        chat_id = int(p["chat_id"])
        msg: dict[str, Any] = {"message_id": int(p.get("message_id") or next(self.message_ids)),
                               "date": int(time.time()), "chat": self._chat(chat_id), "from": BOT_USER}
        if method == "sendPhoto":
            msg.update(photo=[{"file_id": "p1", "file_unique_id": "u1", "width": 800, "height": 360,
                               "file_size": p["photo"]}], caption=p.get("caption", ""))
        else:
            msg["text"] = p.get("text", "")
        with self.cond:
            self.sent.append({"method": method, "chat_id": chat_id, "text": p.get("text") or p.get("caption", ""),
                              "photo_bytes": p.get("photo"), "reply_markup": p.get("reply_markup"),
                              "message_id": msg["message_id"], "at": time.monotonic()})
        return msg
