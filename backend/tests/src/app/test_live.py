"""The live feed: one Redis read per interval however many dashboards, newest body only, idle when nobody listens."""

from __future__ import annotations

import asyncio

from backend.src.app.live import FleetFeed


def test_one_reader_for_all_dashboards_and_no_backlog() -> None:
    async def scenario() -> None:
        n = 0

        async def build() -> bytes:
            nonlocal n
            n += 1
            return b'{"n":%d}' % n

        feed = FleetFeed(build, interval_s=0.05, keepalive_s=10)
        streams = [feed.stream() for _ in range(20)]
        assert [await s.__anext__() for s in streams] == [b"retry: 1000\n\n"] * 20
        firsts = [await s.__anext__() for s in streams]
        assert len(set(firsts)) == 1 and firsts[0].startswith(b"event: fleet\ndata: {")
        await asyncio.sleep(0.5)  # a slow dashboard reads nothing meanwhile
        reads = feed.reads
        assert 2 <= reads <= 40  # ~10: one read per interval for all 20 dashboards (not 200)
        latest = await streams[0].__anext__()
        got = int(latest.split(b'"n":')[1].split(b"}")[0])
        assert got >= n - 1 and got >= 2  # the newest body (or the one just before it), not the backlog's head
        for s in streams:
            await s.aclose()
        await asyncio.sleep(0.15)
        assert feed.task is None  # nobody listening: nothing is read
        idle = feed.reads
        await asyncio.sleep(0.2)
        assert feed.reads == idle
        await feed.close()

    asyncio.run(scenario())
