"""Non-engine children of the manager: the API (``uvicorn backend.src.app.main:app``), the RQ
workers (``python -m backend.ml.features.worker``), the Telegram bot (``python -m backend.src.bot``) and the
analytics shipper (``python -m backend.src.analytics serve``).

Each dies with the manager (``PR_SET_PDEATHSIG``) and is restarted if it crashes, backing off 1 s,
2 s, ... 30 s (reset after 30 s of stable running); one that a signal stopped stays stopped.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess  # noqa: S404 - we start our own children on purpose
import sys
import time
from collections.abc import Callable

from backend.src.core.redis_launcher import die_with_parent, stop_child
from backend.src.core.settings import REPO_ROOT, Settings
from backend.src.supervisor.restart_policy import RestartPolicy

log = logging.getLogger(__name__)
# The API and the RQ workers come back after 1 s, 2 s, 4 s … 30 s; a 30 s run resets the count.
CHILD_RESTARTS = RestartPolicy(base_s=1.0, cap_s=30.0, jitter=0.0, stable_after_s=30.0)
# How a child ends when a SIGTERM or SIGINT stops it: cleanly (uvicorn, RQ's warm shutdown, the analytics
# process and the bot exit 0 on them), or by the default action. A crash exits non-zero.
SIGNALLED_EXITS = frozenset({0, -signal.SIGTERM, -signal.SIGINT})


# What a child takes from the manager's environment besides its LEVIBOT_ settings: the
# interpreter's basics, and coverage's subprocess hook when the test suite measures it.
INHERITED = frozenset({"PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH",
                       "PYTHONHASHSEED", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV"})
INHERITED_PREFIXES = ("COVERAGE_", "COV_CORE_")


def child_environ(settings: Settings, secrets: frozenset[str], environ: dict[str, str] | None = None) -> dict[str, str]:
    """An allow-listed environment: basics from ``environ`` plus the settings, with only ``secrets``."""
    src = os.environ if environ is None else environ
    base = {k: v for k, v in src.items() if k in INHERITED or k.startswith(INHERITED_PREFIXES)}
    return {**base, **settings.child_env(secrets)}


class ChildProcess:
    secrets: frozenset[str] = frozenset()  # the secret settings this kind of child uses

    def __init__(self, settings: Settings, label: str, on_exit: Callable[[ChildProcess], None] | None = None) -> None:
        self.settings = settings
        self.label = label
        self.on_exit = on_exit
        self.proc: subprocess.Popen[bytes] | None = None
        self.died_at = 0.0
        self.started_at = 0.0
        self.failures = 0
        self.delay = 0.0
        self.starts = 0

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        env = child_environ(self.settings, self.secrets)
        self.starts += 1
        self.proc = subprocess.Popen(  # noqa: S603
            self.argv(), cwd=REPO_ROOT, env=env, start_new_session=True, preexec_fn=die_with_parent()
        )
        self.started_at = time.monotonic()
        log.info("%s started (pid %s)", self.label, self.proc.pid)

    def supervise(self) -> None:
        """Called every manager step: restart a dead child after its backoff delay. A child that a signal
        stopped (SIGTERM/SIGINT from outside: systemd's control-group kill, an operator) exited cleanly and
        stays stopped: that is a stop, not a crash."""
        if self.proc is None or self.proc.poll() is None:
            return
        if self.proc.returncode in SIGNALLED_EXITS:
            log.warning("%s stopped by a signal from outside the manager (exit %s); not restarted",
                        self.label, self.proc.returncode)
            if self.on_exit is not None:
                self.on_exit(self)
            self.proc = None
            return
        now = time.monotonic()
        if not self.died_at:
            self.died_at = now
            self.failures = 1 if CHILD_RESTARTS.stable(now - self.started_at) else self.failures + 1
            # never immediate for a child (it may die at once again): the policy's delay for one more failure
            self.delay = CHILD_RESTARTS.delay(self.failures + 1, random.Random(0))  # noqa: S311 - no jitter configured
            log.error("%s exited with code %s; restarting in %.0fs", self.label, self.proc.returncode, self.delay)
            if self.on_exit is not None:
                self.on_exit(self)
        if now - self.died_at >= self.delay:
            self.died_at = 0.0
            self.start()

    def stop(self, timeout: float = 5.0) -> None:
        stop_child(self.proc, timeout)
        self.proc = None


class ApiProcess(ChildProcess):
    # control endpoints, and the analytics server's read-only user (history pages); no exchange, LLM or chat keys
    secrets = frozenset({"api_token", "clickhouse_read_url", "signal_secrets"})
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, f"api on http://{settings.api_host}:{settings.api_port}")

    def argv(self) -> list[str]:
        s = self.settings
        # Open dashboards hold endless live-feed streams, which uvicorn would wait for on SIGTERM:
        # they are cut after a second (the page reconnects to the next API by itself).
        return [sys.executable, "-m", "uvicorn", "backend.src.app.main:app", "--host", s.api_host,
                "--port", str(s.api_port), "--no-access-log", "--log-level", "warning",
                "--timeout-graceful-shutdown", "1"]


class BotProcess(ChildProcess):
    # the chat's token and the analytics read-only user (/pnl): no API token, exchange or LLM keys
    secrets = frozenset({"telegram_bot_token", "clickhouse_read_url"})

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "telegram bot")

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "backend.src.bot"]


class AnalyticsProcess(ChildProcess):
    """Ships journals, events and candles into the analytics store (and serves the embedded one)."""

    secrets = frozenset({"clickhouse_url"})  # a server URL may carry its password

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "analytics")

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "backend.src.analytics", "serve"]


class WorkerProcess(ChildProcess):
    """One RQ worker; a new name per start (RQ refuses a name whose key is still alive)."""

    secrets = frozenset({"gemma_api_key", "openai_api_key", "dune_api_key", "nansen_api_key"})  # news, on-chain

    def __init__(self, settings: Settings, index: int, on_exit: Callable[[ChildProcess], None] | None = None) -> None:
        super().__init__(settings, f"rq worker {index}", on_exit)
        self.index = index

    @property
    def name(self) -> str:
        return f"levibot-{socket.gethostname()}-{os.getpid()}-w{self.index}-{self.starts}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "backend.ml.features.worker", "--name", self.name]

    def start(self) -> None:
        super().start()
        self.label = f"rq worker {self.name}"
