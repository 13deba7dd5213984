"""The dashboard's live feed: Server-Sent Events fed from Redis by one shared reader.

However many dashboards are open, one task reads the fleet (the same body as ``/engines/status``)
every ``interval_s`` while at least one is connected, and hands the new body to each of them; a slow
client only ever holds the latest body (a queue of one), so it cannot build a backlog. Nothing runs
while no dashboard is connected. A comment line every ``keepalive_s`` keeps proxies from closing an
idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import redis

log = logging.getLogger(__name__)


class FleetFeed:
    def __init__(self, build: Callable[[], Awaitable[bytes]], interval_s: float = 0.5,
                 keepalive_s: float = 15.0) -> None:
        self.build, self.interval_s, self.keepalive_s = build, interval_s, keepalive_s
        self.subscribers: set[asyncio.Queue[bytes]] = set()
        self.last = b""
        self.task: asyncio.Task[None] | None = None
        self.reads = 0  # fleet reads done (a test checks it does not grow with the number of dashboards)

    async def run(self) -> None:
        while self.subscribers:
            try:
                body = await self.build()
                self.reads += 1
            except redis.RedisError as exc:
                body = b'{"error":"redis unavailable: ' + type(exc).__name__.encode() + b'"}'
            if body != self.last:
                self.last = body
                for q in list(self.subscribers):
                    if q.full():
                        q.get_nowait()  # a slow client gets the newest body, not a backlog
                    q.put_nowait(body)
            await asyncio.sleep(self.interval_s)
        self.task = None

    async def stream(self) -> AsyncIterator[bytes]:
        q: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1)
        if self.last:
            q.put_nowait(self.last)
        self.subscribers.add(q)
        if self.task is None:
            self.task = asyncio.create_task(self.run())
        try:
            yield b"retry: 1000\n\n"
            while True:
                try:
                    body = await asyncio.wait_for(q.get(), self.keepalive_s)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                yield b"event: fleet\ndata: " + body + b"\n\n"
        finally:
            self.subscribers.discard(q)

    async def close(self) -> None:
        self.subscribers.clear()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
