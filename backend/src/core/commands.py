"""Operator commands through Redis: durable (a stream with a consumer group) and acknowledged.

The API (or any client) appends a command to the owning manager's stream; the manager
reads it with ``XREADGROUP``, carries it out, writes the result to ``command:<id>`` and
only then ``XACK``s it. A command sent while the manager is down waits in the stream; one
read but not acknowledged before a crash is read again from the pending list. Commands
older than ``max_age_s`` are not carried out (a stale "restart" must not fire hours later).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Literal, cast

import redis
import redis.asyncio as aioredis

from backend.src.core.keys import Keys

Action = Literal["start", "stop", "restart", "reload", "promote", "rollback", "replay"]
ACTIONS: tuple[str, ...] = ("start", "stop", "restart", "reload", "promote", "rollback", "replay")
GROUP = "manager"
RESULT_TTL_S = 86_400
StreamReply = list[tuple[str, list[tuple[str, dict[str, str]]]]] | None
STREAM_MAXLEN = 10_000


@dataclass(frozen=True)
class Command:
    msg_id: str
    command_id: str
    action: str
    symbol: str
    sent_at: float
    arg: str = ""  # promote: the model version; replay: its request (JSON)


def send(r: redis.Redis, keys: Keys, owner: str, action: Action, symbol: str = "", now: float | None = None,
         arg: str = "", command_id: str | None = None) -> str:
    """Queue a command for the manager ``owner``; returns its id. With a ``command_id`` of the
    caller's (derived from what asked for it, e.g. a chat update) the command is queued at most
    once: asked again, the id of the one already queued comes back and nothing is added."""
    once = command_id is not None
    command_id = command_id or uuid.uuid4().hex
    sent = time.time() if now is None else now
    key = keys.command_result(command_id)
    with r.pipeline(transaction=True) as pipe:
        try:
            if once:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                if pipe.exists(key):
                    return command_id
                pipe.multi()
            pipe.hset(key, mapping={"status": "pending", "action": action, "symbol": symbol, "sent_at": f"{sent:.3f}"})
            pipe.expire(key, RESULT_TTL_S)
            pipe.xadd(keys.commands(owner), {"id": command_id, "action": action, "symbol": symbol,
                                             "sent_at": f"{sent:.3f}", "arg": arg},
                      maxlen=STREAM_MAXLEN, approximate=True)
            pipe.execute()
        except redis.WatchError:  # queued meanwhile by another caller with the same id
            pass
    return command_id


def result(r: redis.Redis, keys: Keys, command_id: str) -> dict[str, str]:
    return r.hgetall(keys.command_result(command_id))  # type: ignore[return-value]


async def wait_result(r: aioredis.Redis, keys: Keys, command_id: str, wait_s: float) -> dict[str, str]:
    """The command's result once the manager has answered, or as it stands after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    res: dict[str, str] = await r.hgetall(keys.command_result(command_id))  # type: ignore[misc,assignment]
    while res.get("status") == "pending" and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        res = await r.hgetall(keys.command_result(command_id))  # type: ignore[misc,assignment]
    return res


class CommandInbox:
    """The manager's side: read, carry out, record the result, acknowledge."""

    def __init__(self, r: redis.Redis, keys: Keys, owner: str, consumer: str, max_age_s: float = 300.0) -> None:
        self.r, self.keys, self.stream = r, keys, keys.commands(owner)
        self.consumer, self.max_age_s = consumer, max_age_s
        self._backlog_done = False

    def ensure_group(self) -> None:
        try:
            # id 0: commands queued before this manager ever ran are delivered too
            self.r.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def fetch(self, count: int = 20) -> list[Command]:
        """Pending (read before a crash, never acked) first, then new commands."""
        start = "0" if not self._backlog_done else ">"
        reply = cast(StreamReply, self.r.xreadgroup(GROUP, self.consumer, {self.stream: start}, count=count))
        out: list[Command] = []
        for _, messages in reply or []:
            for msg_id, f in messages:
                if not f:  # pending entry deleted from the stream
                    self.r.xack(self.stream, GROUP, msg_id)
                    continue
                out.append(Command(msg_id, f.get("id", ""), f.get("action", ""), f.get("symbol", ""),
                                   float(f.get("sent_at") or 0), f.get("arg", "")))
        if start == "0" and len(out) < count:
            self._backlog_done = True
        return out

    def expired(self, cmd: Command, now: float) -> bool:
        return now - cmd.sent_at > self.max_age_s

    def done(self, cmd: Command, status: Literal["done", "error", "expired"], detail: str, now: float) -> None:
        pipe = self.r.pipeline(transaction=True)
        key = self.keys.command_result(cmd.command_id)
        pipe.hset(key, mapping={"status": status, "detail": detail, "done_at": f"{now:.3f}",
                                "action": cmd.action, "symbol": cmd.symbol})
        pipe.expire(key, RESULT_TTL_S)
        pipe.xack(self.stream, GROUP, cmd.msg_id)
        pipe.execute()


def encode_config(config: dict[str, object]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))
