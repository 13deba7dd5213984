from __future__ import annotations

from pathlib import Path

import pytest

from backend.src.errors import RedisUnavailable, UsageError
from backend.src.redis_launcher import EmbeddedRedis, connect, find_redis_server, ping, redact


def test_embedded_server_persists_across_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    r = connect(server.url)
    r.set("k", "v")
    server.stop()
    with pytest.raises(RedisUnavailable, match="unreachable"):
        ping(r, server.url)
    server.start()  # same port, same AOF
    assert r.get("k") == "v"
    assert (tmp_path / "redis" / "redis.log").exists()
    info = r.info("persistence")
    assert info["aof_enabled"] == 1
    assert r.config_get("bind")["bind"].startswith("127.0.0.1")
    server.stop()
    assert not server.alive()


def test_binary_found() -> None:
    assert Path(find_redis_server()).name == "redis-server"


def test_bad_binary_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="exited with code"):
        EmbeddedRedis(tmp_path, binary="/bin/false").start(wait_s=5)


def test_redact_hides_password() -> None:
    assert redact("redis://:s3cret@host:6379/0") == "redis://***@host:6379/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"
