"""What the API and dashboard benchmarks share: Redis from the project's launcher and the real
manager with N synthetic engines and its API, started and waited for, stopped afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from backend.src.core.redis_launcher import EmbeddedRedis, free_port
from backend.src.core.redis_url import connect
from backend.src.core.settings import REPO_ROOT


@dataclass
class Fleet:
    redis_url: str
    api_port: int
    manager: subprocess.Popen[bytes]
    data_dir: Path


@contextmanager
def fleet(prog: str, ns: str, symbols: list[str], **env_extra: str) -> Iterator[Fleet]:
    with tempfile.TemporaryDirectory(prefix=f"levibot-{prog}-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEVIBOT_")}
        env.update({"LEVIBOT_REDIS_URL": server.url, "LEVIBOT_NAMESPACE": ns, "LEVIBOT_DATA_DIR": f"{tmp}/data",
                    "LEVIBOT_API_PORT": str(port), **{f"LEVIBOT_{k.upper()}": v for k, v in env_extra.items()}})
        mgr = subprocess.Popen([sys.executable, "-m", "backend.src.engine_manager", "--symbols", ",".join(symbols)],
                               env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            r = connect(server.url)
            deadline = time.monotonic() + 180
            while sum(1 for s in symbols if r.hget(f"{ns}engine:{s}", "status") == "running") < len(symbols):
                if time.monotonic() > deadline or mgr.poll() is not None:
                    raise SystemExit(f"{prog}: engines did not start")
                time.sleep(0.1)
            while env.get("LEVIBOT_API_ENABLED") != "false":  # the API starts after the engines: wait for it
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{prog}: the API did not start") from None
                    time.sleep(0.1)
            yield Fleet(server.url, port, mgr, Path(tmp) / "data")
        finally:
            mgr.terminate()
            mgr.wait(60)
            server.stop()
