"""Secrets reach only the children that use them; the embedded Redis needs its password."""

from __future__ import annotations

import signal
import stat
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis

from backend.src.core.redis_launcher import free_port
from backend.src.core.settings import Settings
from backend.src.supervisor.children import ApiProcess, ChildProcess, WorkerProcess, child_environ
from backend.tests.conftest import ManagerProc, wait_for
from backend.tests.src.test_engine_manager import _all_running, embedded_env

SECRETS = {
    "LEVIBOT_EXCHANGE_API_KEY": "exkey-0123456789abcdef",
    "LEVIBOT_EXCHANGE_SECRET": "exsecret-0123456789abcdef",
    "LEVIBOT_API_TOKEN": "apitoken-0123456789abcdef",
    "LEVIBOT_GEMMA_API_KEY": "gemmakey-0123456789abcdef",
    "LEVIBOT_DUNE_API_KEY": "dunekey-0123456789abcdef",
    "levibot_nansen_api_key": "nansenkey-0123456789abcdef",  # settings are read case-insensitively: so is the scrub
    "LEVIBOT_TELEGRAM_BOT_TOKEN": "123456:telegramtoken-0123456789",
    "LEVIBOT_SLACK_WEBHOOK_URL": "http://127.0.0.1:1/slack-secret-0123456789",
    "LEVIBOT_CLICKHOUSE_URL": "http://default:chpassword-0123456789@127.0.0.1:1/?database=levibot",
}


def environ(p: psutil.Process) -> str:
    return Path(f"/proc/{p.pid}/environ").read_bytes().decode(errors="replace")


def kind(p: psutil.Process) -> str:
    cmd = " ".join(p.cmdline())
    for name in ("uvicorn", "rq:worker", "redis-server", "engine-", "forkserver", "backend.src.bot",
                 "backend.src.analytics"):
        if name in cmd:
            return name
    return cmd


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[ManagerProc, Path]:
    data = tmp_path / "data"
    port = free_port()
    env = embedded_env(data, LEVIBOT_API_ENABLED="1", LEVIBOT_API_PORT=str(port), LEVIBOT_WORKERS="1",
                       LEVIBOT_TELEGRAM_API_BASE="http://127.0.0.1:1", LEVIBOT_TELEGRAM_CHAT_ID="5", **SECRETS)
    m = ManagerProc(["--symbols", "BTCUSDT,ETHUSDT"], env)
    try:
        wait_for(lambda: _all_running(data / "engine_registry.json"), 30, what="engines running")
        wait_for(lambda: {"uvicorn", "rq:worker", "backend.src.bot", "backend.src.analytics"}
                 <= {kind(p) for p in m.descendants()}, 20, what="api, worker, bot and analytics started")
        yield m, data
    finally:
        assert m.stop() == 0


def test_each_child_gets_only_the_secrets_it_uses(fleet: tuple[ManagerProc, Path]) -> None:
    m, _ = fleet
    allowed = {
        "uvicorn": {"LEVIBOT_API_TOKEN"},
        "backend.src.bot": {"LEVIBOT_TELEGRAM_BOT_TOKEN"},  # it waits for the (unreachable) Bot API meanwhile
        "backend.src.analytics": {"LEVIBOT_CLICKHOUSE_URL"},  # it waits for the (unreachable) server meanwhile
        "rq:worker": {"LEVIBOT_GEMMA_API_KEY", "LEVIBOT_DUNE_API_KEY", "LEVIBOT_NANSEN_API_KEY"},
        "redis-server": set(),
        "engine-": set(),  # paper engines: no keys at all (live engines get the exchange keys in memory)
        "forkserver": set(),
    }
    seen = set()
    for p in m.descendants():
        k = kind(p)
        if k not in allowed:
            continue
        env = environ(p)
        if "PATH=" not in env:
            continue  # setproctitle reused the environ area for the title (engines, rq workers): see below
        seen.add(k)
        for name, value in SECRETS.items():
            if name.upper() in allowed[k]:
                assert value in env, f"{k} needs {name}"
            else:
                assert value not in env, f"{k} (pid {p.pid}) holds {name}"
    # Engines are forks of the forkserver: what it holds is what they inherit.
    assert {"uvicorn", "forkserver", "backend.src.bot", "backend.src.analytics"} <= seen, seen


def test_worker_environment_is_allow_listed() -> None:
    env = {**SECRETS, "PATH": "/usr/bin", "HOME": "/root", "COVERAGE_PROCESS_START": "x", "AWS_SECRET": "no"}
    settings = Settings(**{k.upper().removeprefix("LEVIBOT_").lower(): v for k, v in SECRETS.items()})  # type: ignore[arg-type]
    got = child_environ(settings, WorkerProcess.secrets, env)
    assert got["LEVIBOT_GEMMA_API_KEY"] == SECRETS["LEVIBOT_GEMMA_API_KEY"] and got["PATH"] == "/usr/bin"
    assert "COVERAGE_PROCESS_START" in got and "AWS_SECRET" not in got
    for name in ("LEVIBOT_EXCHANGE_API_KEY", "LEVIBOT_EXCHANGE_SECRET", "LEVIBOT_API_TOKEN",
                 "LEVIBOT_TELEGRAM_BOT_TOKEN", "LEVIBOT_SLACK_WEBHOOK_URL"):
        assert name not in got
    api = child_environ(settings, ApiProcess.secrets, env)
    assert api["LEVIBOT_API_TOKEN"] == SECRETS["LEVIBOT_API_TOKEN"] and "LEVIBOT_GEMMA_API_KEY" not in api


def test_embedded_redis_refuses_clients_without_the_password(fleet: tuple[ManagerProc, Path]) -> None:
    m, data = fleet
    rdir = data / "redis"
    assert stat.S_IMODE(rdir.stat().st_mode) == 0o700
    for name in ("password", "url", "redis.conf"):
        assert stat.S_IMODE((rdir / name).stat().st_mode) == 0o600, name
    url = (rdir / "url").read_text().strip()
    password = (rdir / "password").read_text().strip()
    assert len(password) >= 32 and f":{password}@" in url
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    anon = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    with pytest.raises(redis.AuthenticationError):
        anon.xadd(b"levibot:commands:x", {"action": "stop", "symbol": "BTCUSDT"})
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, password="guess", socket_timeout=2).ping()
    assert redis.Redis.from_url(url, socket_timeout=2).ping()
    (server,) = [p for p in m.descendants() if kind(p) == "redis-server"]
    assert password not in " ".join(server.cmdline()), "never on a command line"
    logs = "".join(p.read_text() for p in (data / "logs").rglob("*") if p.is_file())
    assert password not in logs and all(v not in logs for v in SECRETS.values())


class Sleeper(ChildProcess):
    """A child that runs until it is signalled (Python's default SIGTERM action: exit -15). It touches
    ``ready`` once its own code runs: a SIGINT still inside the interpreter's start-up (``import site``)
    exits 1, a crash, where the test means a signal to a running child."""

    def argv(self) -> list[str]:
        ready = self.settings.data_dir / "ready"
        return [sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"]


@pytest.mark.parametrize(("sig", "restarted"), [(signal.SIGTERM, False), (signal.SIGINT, False),
                                                 (signal.SIGKILL, True)])
def test_a_child_a_signal_stopped_stays_stopped_a_killed_one_comes_back(tmp_path: Path, sig: int,
                                                                         restarted: bool) -> None:
    exits: list[ChildProcess] = []
    child = Sleeper(Settings(data_dir=tmp_path), "sleeper", exits.append)  # type: ignore[call-arg]
    child.start()
    first = child.proc
    assert first is not None
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        first.send_signal(sig)
        first.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (child.proc is first or child.proc is None) and restarted:
            child.supervise()
            time.sleep(0.05)
        child.supervise()
        assert exits == [child], "the exit is reported either way (a worker's job is requeued)"
        if restarted:
            assert child.proc is not None and child.proc is not first and child.starts == 2
        else:
            assert child.proc is None and child.starts == 1
    finally:
        child.stop()
