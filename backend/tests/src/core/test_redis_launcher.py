from __future__ import annotations

from pathlib import Path

import pytest

from backend.src.core.errors import RedisUnavailable, UsageError
from backend.src.core.redis_launcher import EmbeddedRedis, find_redis_server, ping
from backend.src.core.redis_url import connect, redact


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
    aof = r.config_get("auto-aof-rewrite-*")
    assert aof == {"auto-aof-rewrite-percentage": "100", "auto-aof-rewrite-min-size": str(16 * 2**20)}, aof
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


def test_password_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    from backend.src.core.redis_launcher import embedded_password

    pw = embedded_password(tmp_path / "redis")
    assert len(pw) >= 32 and embedded_password(tmp_path / "redis") == pw
    assert ((tmp_path / "redis" / "password").stat().st_mode & 0o777) == 0o600
    server = EmbeddedRedis(tmp_path / "redis", password=pw).start()
    try:
        assert connect(server.url).ping()
        with pytest.raises(RedisUnavailable):
            ping(connect(server.url.replace(pw, "wrong")), server.url)
        assert pw not in redact(server.url)
    finally:
        server.stop()
