"""HTTP-side helpers over the fleet read model (``core/fleet.py``): the symbol path parameter and
the shared status body cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Path

SymbolPath = Annotated[str, Path(pattern=r"^[A-Z0-9]{2,20}$", description="e.g. BTCUSDT")]


class BodyCache:
    """One rendered body shared by every request within ``ttl_s`` (single-flight refresh).

    200 dashboards polling at once cost one Redis round trip per ``ttl_s``, not 200.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.body = b""
        self.at = float("-inf")
        self.lock = asyncio.Lock()

    async def get(self, build: Callable[[], Awaitable[bytes]]) -> bytes:
        if time.monotonic() - self.at < self.ttl_s:
            return self.body
        async with self.lock:
            if time.monotonic() - self.at >= self.ttl_s:
                self.body = await build()
                self.at = time.monotonic()
        return self.body
