"""The API as a child process of the manager: ``uvicorn backend.src.app.main:app``.

It dies with the manager (``PR_SET_PDEATHSIG``) and is restarted if it exits on its own.
"""

from __future__ import annotations

import logging
import os
import subprocess  # noqa: S404 - we start our own API server on purpose
import sys
import time

from backend.src.redis_launcher import die_with_parent, stop_child
from backend.src.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)
RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 30.0
STABLE_S = 30.0


class ApiProcess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.died_at = 0.0
        self.started_at = 0.0
        self.delay = RESTART_DELAY_S

    def argv(self) -> list[str]:
        s = self.settings
        return [sys.executable, "-m", "uvicorn", "backend.src.app.main:app", "--host", s.api_host,
                "--port", str(s.api_port), "--no-access-log", "--log-level", "warning"]

    def start(self) -> None:
        env = {**os.environ, **self.settings.child_env()}
        self.proc = subprocess.Popen(  # noqa: S603
            self.argv(), cwd=REPO_ROOT, env=env, start_new_session=True, preexec_fn=die_with_parent()
        )
        self.started_at = time.monotonic()
        log.info("api started on http://%s:%s (pid %s)", self.settings.api_host, self.settings.api_port,
                 self.proc.pid)

    def supervise(self) -> None:
        """Called every manager step: restart a dead API, backing off 1 s, 2 s, ... 30 s."""
        if self.proc is None or self.proc.poll() is None:
            return
        now = time.monotonic()
        if not self.died_at:
            self.died_at = now
            if now - self.started_at >= STABLE_S:
                self.delay = RESTART_DELAY_S
            log.error("api exited with code %s (port %s in use?); restarting in %.0fs", self.proc.returncode,
                      self.settings.api_port, self.delay)
        if now - self.died_at >= self.delay:
            self.died_at = 0.0
            self.delay = min(MAX_RESTART_DELAY_S, self.delay * 2)
            self.start()

    def stop(self, timeout: float = 5.0) -> None:
        stop_child(self.proc, timeout)
        self.proc = None
