"""One Redis factory for every process: plain URLs and Sentinel, checked against real servers."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import redis

from backend.src.core.redis_url import check_url, connect, connect_async, parse_sentinel, redact
from backend.tests.sentinel_cluster import SentinelCluster


def test_sentinel_url_parts() -> None:
    s = parse_sentinel("redis+sentinel://:p%40ss@h1:26379,[::1]:26380/mymaster/3?sentinel_password=x")
    assert s is not None
    assert s.hosts == (("h1", 26379), ("::1", 26380))
    assert (s.service, s.db, s.password, s.sentinel_password) == ("mymaster", 3, "p@ss", "x")
    assert parse_sentinel("redis+sentinel://h:1/svc").db == 0  # type: ignore[union-attr]
    assert parse_sentinel("redis://h:1/0") is None


@pytest.mark.parametrize(("url", "names"), [
    ("redis+sentinel://h1/mymaster/0", "'h1' is not host:port"),
    ("redis+sentinel://h1:1,:2/m/0", "':2' is not host:port"),
    ("redis+sentinel://h1:1", "ends in /<service name>/<db>"),
    ("redis+sentinel://h1:1/m/x", "ends in /<service name>/<db>"),
    ("http://h:1/0", "scheme 'http'"),
])
def test_bad_urls_name_what_is_wrong(url: str, names: str) -> None:
    with pytest.raises(ValueError, match=re.escape(names)):
        check_url(url)


def test_redact_hides_every_password() -> None:
    assert redact("redis+sentinel://:secret@h:1,h:2/m/0?sentinel_password=other") == \
        "redis+sentinel://***@h:1,h:2/m/0?sentinel_password=***"
    assert redact("redis://:secret@h:1/0") == "redis://***@h:1/0"
    assert redact("redis://h:1/0") == "redis://h:1/0"


@pytest.mark.slow
def test_clients_follow_a_sentinel_failover(tmp_path: Path) -> None:
    """Write with WAIT 1, kill -9 the primary: the sync client finds the promoted replica and what
    WAIT acknowledged is there; the async client (API, bot) follows too."""
    cluster = SentinelCluster(tmp_path).start()
    try:
        r = connect(cluster.url, timeout=1.0)
        acked = []
        for i in range(50):
            r.xadd("t:journal", {"i": str(i)}, id=f"{i + 1}-0")
            if r.wait(1, 1000) >= 1:
                acked.append(f"{i + 1}-0")
        assert len(acked) == 50
        took = cluster.kill_primary_and_wait_failover()
        deadline = time.monotonic() + 20
        while True:
            try:
                ids = [e[0] for e in r.xrange("t:journal")]
                break
            except redis.RedisError:
                assert time.monotonic() < deadline, "the client never reached the new primary"
                time.sleep(0.1)
        assert ids == acked
        assert r.connection_pool.get_master_address()[1] == cluster.replica.port  # type: ignore[attr-defined]
        r.set("t:after", "1")  # writable: a primary, not a read-only replica

        async def read() -> str | None:
            ar = connect_async(cluster.url)
            try:
                return await ar.get("t:after")  # type: ignore[no-any-return]
            finally:
                await ar.aclose()

        import asyncio
        assert asyncio.run(read()) == "1"
        assert took < 20
    finally:
        cluster.stop()


def test_settings_check_the_url_and_read_an_empty_one_as_unset() -> None:
    from pydantic import ValidationError

    from backend.src.core.settings import Settings

    assert Settings(redis_url="").redis_url is None  # an empty variable (compose's ${X:-}) means: embedded
    assert Settings(redis_url="redis+sentinel://h:1,h:2/m/0").wait_replicas == 1
    assert Settings(redis_url="redis://h:1/0").wait_replicas == 0
    with pytest.raises(ValidationError, match="redis_url"):
        Settings(redis_url="redis+sentinel://h:1")
