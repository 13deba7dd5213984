"""The manager's record of one engine: its state, process, crash counts and pending actions."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backend.src.core.runtime import ProcessHandle
from backend.src.core.states import EngineState
from backend.src.engine.spec import EngineSpec

S = EngineState
log = logging.getLogger(__name__)


@dataclass
class EngineRecord:
    symbol: str
    spec: EngineSpec
    state: EngineState | None = None
    proc: ProcessHandle | None = None
    failures: int = 0  # consecutive crashes without a stable run
    restarts: int = 0  # total restarts
    running_since: float | None = None
    restart_due: float | None = None
    crash_at: float | None = None  # wall time the last crash was detected
    last_hb: float = 0.0
    last_error: str = ""
    stop_requested: bool = False
    start_after_stop: bool = False  # restart command: start again once the stop completed
    removed: bool = False  # dropped from the config: forget it once stopped
    kill_sent: bool = False  # the watchdog already SIGKILLed this process as hung
    liquidating: bool = False  # proc is the one-shot process closing a failed engine's position
    liquidations: int = 0  # liquidation attempts since the engine failed
    memory_restarts: int = 0  # graceful restarts for growing above max_rss_mb
    stopping_since: float = 0.0  # monotonic: when it was asked to stop (killed if it is still there later)


    def health(self, now: float, max_concurrent_starts: int) -> dict[str, object]:
        """Alive or not, and why not (``now``: monotonic)."""
        alive = self.proc is not None and self.proc.alive() and self.state is S.RUNNING
        reason = ""
        if not alive:
            if self.state is S.FAILED:
                reason = f"failed: {self.last_error}"
            elif self.restart_due is not None and self.state is S.STARTING:
                reason = f"queued: at most {max_concurrent_starts} engines start at once"
            elif self.restart_due is not None:
                reason = f"restarting in {max(0.0, self.restart_due - now):.1f}s (failure {self.failures}): " \
                         f"{self.last_error}"
            elif self.state in (S.STARTING, S.RESTARTING):
                reason = "starting: waiting for first heartbeat"
            elif self.stop_requested or self.state is S.STOPPED:
                reason = "stopped by operator"
            else:
                reason = self.last_error or (self.state.value if self.state else "never started")
        return {"alive": alive, "status": self.state.value if self.state else None,
                "pid": self.proc.pid if self.proc else None, "restarts": self.restarts, "reason": reason}


def default_owner(data_dir: Path) -> str:
    return f"{socket.gethostname()}:{data_dir.resolve()}".replace("|", "/")


def sweep(records: dict[str, EngineRecord], now: float, max_concurrent_starts: int,
          is_engine: Callable[[int, str], bool]) -> None:
    """Log any engine whose pid lost its identity, and one summary line of who is down and why."""
    for rec in records.values():
        if rec.proc is not None and rec.proc.alive() and not rec.liquidating \
                and not is_engine(rec.proc.pid, rec.symbol):
            log.error("engine %s pid %s lost its identity", rec.symbol, rec.proc.pid, extra={"symbol": rec.symbol})
    seen = health(records, now, max_concurrent_starts)
    log.info("health sweep: %d/%d engines running", sum(1 for h in seen.values() if h["alive"]),
             len(seen), extra={"down": {k: v["reason"] for k, v in seen.items() if not v["alive"]}})


def health(records: dict[str, EngineRecord], now: float, max_concurrent_starts: int) -> dict[str, dict[str, object]]:
    """Every engine: alive or not, and why not (``now``: monotonic)."""
    return {sym: rec.health(now, max_concurrent_starts) for sym, rec in records.items()}
