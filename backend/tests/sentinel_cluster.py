"""A real Redis Sentinel deployment on loopback for tests: a primary, a replica and three sentinels.

Every process is the ``redis-server`` binary the embedded launcher uses (``--sentinel`` for the
sentinels), with its own port, directory and config file; the data servers require a password.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from backend.src.core.redis_launcher import find_redis_server, free_port, stop_child

SERVICE = "levimaster"
DOWN_AFTER_MS = 1000


class Node:
    def __init__(self, directory: Path, lines: list[str], *, sentinel: bool = False) -> None:
        self.directory, self.lines, self.sentinel = directory, lines, sentinel
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, password: str | None) -> Node:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "node.conf"
        if not conf.exists():  # a sentinel rewrites its own file: keep it across a restart
            base = [f"port {self.port}", "bind 127.0.0.1", "daemonize no", f"dir {self.directory}",
                    f"logfile {self.directory / 'node.log'}"]
            conf.write_text("\n".join(base + self.lines) + "\n", encoding="utf-8")
        args = [find_redis_server(), str(conf)] + (["--sentinel"] if self.sentinel else [])
        self.proc = subprocess.Popen(args, start_new_session=True)  # noqa: S603
        client = redis.Redis(port=self.port, password=None if self.sentinel else password, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis node in {self.directory} did not start") from None
                time.sleep(0.02)
        client.close()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        stop_child(self.proc, 5.0)


class SentinelCluster:
    def __init__(self, root: Path, password: str = "sentinel-test-pw") -> None:  # noqa: S107 - a test's
        self.root, self.password = root, password
        data = ["appendonly yes", "appendfsync everysec", "save ''", f"requirepass {password}",
                f"masterauth {password}"]
        self.primary = Node(root / "primary", data)
        self.replica = Node(root / "replica", [*data, f"replicaof 127.0.0.1 {self.primary.port}"])
        self.sentinels = [
            Node(root / f"sentinel{i}", [
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2",
                f"sentinel auth-pass {SERVICE} {password}",
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {SERVICE} 4000",
                f"sentinel parallel-syncs {SERVICE} 1",
            ], sentinel=True)
            for i in range(3)
        ]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://:{self.password}@{hosts}/{SERVICE}/0"

    def start(self) -> SentinelCluster:
        self.primary.start(self.password)
        self.replica.start(self.password)
        self.wait_replica_synced(self.primary.port)
        for s in self.sentinels:
            s.start(None)
        self.wait(lambda: all(self.sentinel_sees_replica(s) for s in self.sentinels), 20, "sentinels see the replica")
        return self

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.primary]:
            with contextlib.suppress(Exception):
                node.stop()

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, socket_timeout=1.0, decode_responses=True)

    def master_port(self) -> int:
        """The primary's port as a sentinel reports it."""
        s = redis.Redis(port=self.sentinels[0].port, socket_timeout=1.0, decode_responses=True)
        try:
            return int(s.sentinel_get_master_addr_by_name(SERVICE)[1])
        finally:
            s.close()

    def sentinel_sees_replica(self, node: Node) -> bool:
        s = redis.Redis(port=node.port, socket_timeout=1.0, decode_responses=True)
        try:
            return bool(s.sentinel_slaves(SERVICE))
        except redis.RedisError:
            return False
        finally:
            s.close()

    def wait_replica_synced(self, primary_port: int) -> None:
        def synced() -> bool:
            try:
                info = self.client(primary_port).info("replication")
            except redis.RedisError:
                return False
            return int(info.get("connected_slaves", 0)) >= 1 and "online" in str(info.get("slave0", ""))
        self.wait(synced, 20, "replica in sync")

    def kill_primary_and_wait_failover(self, timeout: float = 30.0) -> float:
        """``kill -9`` the primary; seconds until the sentinels name the replica as the new primary."""
        t0 = time.monotonic()
        self.primary.kill()
        self.wait(lambda: self.master_port() == self.replica.port, timeout, "failover to the replica")
        return time.monotonic() - t0

    @staticmethod
    def wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if cond():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for: {what}")
