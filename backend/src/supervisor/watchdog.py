"""The watchdog: spawns one engine process per symbol, watches and restarts them.

Single-threaded event loop: engine exits are seen at once (``runtime.wait`` wakes up the
moment a child dies), heartbeats are checked every few hundred milliseconds, and a full
health sweep runs every ``health_sweep_s``. The watchdog owns nothing a crash can lose:
positions live in the engines' journals, state in Redis. Every clock reading, sleep and
process operation goes through the ``Runtime`` it is given, and every state change through
``transition`` (``transitions.py``: the state machine, the write and the event it announces), so its
policies are testable with a fake runtime.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import replace

import redis

from backend.risk.policy import RiskPolicy
from backend.src.core.config import SourceSpec, SymbolConfig
from backend.src.core.errors import EXIT_FATAL, EXIT_OK, EXIT_SIGNALLED, UsageError
from backend.src.core.exit_notes import describe_exit
from backend.src.core.keys import Keys
from backend.src.core.runtime import Runtime
from backend.src.core.settings import Settings, without_secrets
from backend.src.core.states import EngineState
from backend.src.engine.spec import EngineSpec
from backend.src.supervisor.engine_record import EngineRecord, default_owner, health, sweep
from backend.src.supervisor.failed import Liquidations
from backend.src.supervisor.liveness import Liveness
from backend.src.supervisor.monitor import Monitor
from backend.src.supervisor.reconcile import reconcile_previous, refuse_foreign_leases
from backend.src.supervisor.restart_policy import RestartPolicy
from backend.src.supervisor.state_store import StateStore
from backend.src.supervisor.transitions import Transitions
from backend.src.venue.factory import engine_secrets

S = EngineState
log = logging.getLogger(__name__)


class Watchdog:
    def __init__(
        self,
        settings: Settings,
        r: redis.Redis,
        configs: dict[str, SymbolConfig],
        sources: dict[str, SourceSpec],
        *,
        runtime: Runtime,
        owner: str | None = None,
        rng: random.Random | None = None,
        policy: RiskPolicy | None = None,
    ) -> None:
        self.settings = s = settings
        self.r, self.rt = r, runtime
        self.keys = Keys(s.namespace)
        self.store = StateStore(r, self.keys)
        self.owner = owner or default_owner(s.data_dir)
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self.policy = RestartPolicy.of(s.supervisor)
        self.risk_policy = policy or RiskPolicy()
        # Engines get the exchange keys when (and only when) they trade live; no other secret.
        self.engine_settings = without_secrets(s, engine_secrets(s))
        self.records: dict[str, EngineRecord] = {
            sym: EngineRecord(sym, EngineSpec(sym, self.engine_settings, cfg, sources[sym], self.owner,
                                              self.risk_policy))
            for sym, cfg in configs.items()
        }
        self.monitor = Monitor(r, self.keys, self.store, s, self.owner, runtime.time)
        self.liveness = Liveness(s, r, self.keys, self.store, runtime, self.owner)
        self.liquidations = Liquidations(self.store, self._spawn)
        self.transition = Transitions(self.store, runtime, self.owner)  # every state change, with its event
        self.shutting_down = False
        self._last = {"hb": 0.0, "mirror": 0.0, "sweep": runtime.monotonic()}

    # ------------------------------------------------------------------ lifecycle

    def check_leases(self) -> None:
        """Refuse symbols leased by a live engine of another manager (UsageError)."""
        refuse_foreign_leases(self.r, self.keys, self.owner, list(self.records))

    def reconcile(self) -> None:
        """Adopt what Redis and the registry say; never trust a bare pid."""
        previous = reconcile_previous(self.store, self.settings.registry_path, list(self.records), self.rt)
        for sym, prev in previous.items():
            rec = self.records[sym]
            rec.restarts = prev.restarts
            if prev.status is not None:  # adopted, not announced: Redis already says so
                self.transition(rec, S.FAILED if prev.status is S.FAILED else S.STOPPED, write=False)

    def _spawn(self, rec: EngineRecord, spec: EngineSpec | None = None) -> None:
        rec.restart_due = None
        rec.proc = self.rt.spawn(spec or rec.spec)
        rec.last_hb = self.rt.monotonic()  # a new process gets a full start timeout
        rec.running_since = None
        rec.kill_sent = False
        log.info("spawned engine %s pid %s", rec.symbol, rec.proc.pid, extra={"symbol": rec.symbol})

    def start(self, symbol: str) -> None:
        """Queue a start: the event loop spawns it when a start slot is free (``max_concurrent_starts``)."""
        rec = self._rec(symbol)
        if rec.proc is not None and not rec.proc.alive():
            self._on_exit(rec)  # it died and the loop has not reaped it yet: account for it first
        if rec.proc is not None:
            return  # running (or a failed engine's liquidation just began)
        if rec.state is S.STARTING and rec.restart_due is not None:
            return  # already queued
        rec.stop_requested, rec.failures, rec.last_error = False, 0, ""
        if rec.state not in (None, S.STOPPED, S.FAILED):  # crashed or waiting for a restart: cancelled
            self.transition(rec, S.STOPPED, write=False)
        self.transition(rec, S.STARTING, pid="", on_failed="")
        rec.restart_due = self.rt.monotonic()
        self._start_due(rec.restart_due)

    def start_all(self, wait_s: float | None = None) -> bool:
        for sym in self.records:
            self.start(sym)
        if wait_s is None:
            return True
        return self.pump_until(lambda: all(r.state is S.RUNNING for r in self.records.values()), wait_s)

    def stop(self, symbol: str, wait: bool = True) -> None:
        rec = self._rec(symbol)
        rec.stop_requested = True
        rec.restart_due = None
        if rec.liquidating:
            return  # failed already; the one-shot liquidation ends by itself
        if rec.proc is None or not rec.proc.alive():
            if rec.state in (S.CRASHED, S.RESTARTING, S.STARTING):  # a pending (re)start is cancelled
                self.transition(rec, S.STOPPED)
            return
        if rec.state is not S.STOPPING:
            self.transition(rec, S.STOPPING)
        self.rt.terminate(rec.proc)
        if wait:
            self._await_exit(rec)

    def _await_exit(self, rec: EngineRecord) -> None:
        if not self.pump_until(lambda: rec.proc is None, self.settings.stop_timeout_s) and rec.proc is not None:
            log.warning("engine %s ignored SIGTERM; killing", rec.symbol, extra={"symbol": rec.symbol})
            self.rt.kill(rec.proc)
            self.pump_until(lambda: rec.proc is None, 5.0)

    def restart_async(self, symbol: str) -> None:
        """Restart without blocking the loop: stop now, start when the process has exited."""
        rec = self._rec(symbol)
        if rec.proc is None or not rec.proc.alive():
            self.start(symbol)
            return
        rec.start_after_stop = True
        self.stop(symbol, wait=False)

    def configs(self) -> dict[str, SymbolConfig]:
        return {s: r.spec.config for s, r in self.records.items() if not r.removed}

    def add(self, symbol: str, config: SymbolConfig, source: SourceSpec) -> None:
        rec = self.records.get(symbol)
        if rec is not None and rec.proc is not None:  # removed, still stopping: cancel the removal
            rec.removed, rec.start_after_stop = False, True
            rec.spec = replace(rec.spec, config=config, source=source)
            return
        self.records[symbol] = EngineRecord(
            symbol, EngineSpec(symbol, self.engine_settings, config, source, self.owner, self.risk_policy))
        self.start(symbol)

    def remove(self, symbol: str) -> None:
        rec = self._rec(symbol)
        rec.removed = True
        self.stop(symbol, wait=False)
        if rec.proc is None:
            del self.records[symbol]

    def update_config(self, symbol: str, config: SymbolConfig) -> None:
        """Future (re)starts use it; the running engine picks it up from Redis (hot reload)."""
        rec = self._rec(symbol)
        rec.spec = replace(rec.spec, config=config)

    def health_check(self) -> dict[str, dict[str, object]]:
        """Every engine: alive or not, and why not."""
        return health(self.records, self.rt.monotonic(), self.settings.max_concurrent_starts)

    def _rec(self, symbol: str) -> EngineRecord:
        try:
            return self.records[symbol]
        except KeyError:
            raise UsageError(f"symbol: {symbol} is not managed here") from None

    # ------------------------------------------------------------------ event loop

    def pump_until(self, cond: Callable[[], bool], timeout: float) -> bool:
        deadline = self.rt.monotonic() + timeout
        while not cond():
            left = deadline - self.rt.monotonic()
            if left <= 0:
                return False
            self.step(min(left, 0.05))
        return True

    def step(self, timeout: float = 0.05) -> None:
        """Wait for engine exits up to ``timeout``, then run due timers."""
        owners = {id(r.proc): r for r in self.records.values() if r.proc is not None}
        procs = [r.proc for r in self.records.values() if r.proc is not None]
        for proc in self.rt.wait(procs, timeout):
            self._on_exit(owners[id(proc)])
        self.tick()

    def tick(self) -> None:
        now = self.rt.monotonic()
        # Poll fast while an engine is starting (its first heartbeat frees a start slot).
        starting = any(r.proc is not None and r.state in (S.STARTING, S.RESTARTING) for r in self.records.values())
        if now - self._last["hb"] >= (0.02 if starting else min(0.2, self.settings.heartbeat_interval_s)):
            self._last["hb"] = now
            self._check_heartbeats(now)
        self._start_due(now)
        self.liveness.forgive_stable(self.records.values(), now, self.policy)
        periodic = now - self._last["mirror"] >= 1.0
        if self.transition.mirror_due or periodic:
            self.transition.mirror_due = False  # state changes of one step are coalesced into one rewrite
            self.store.flush()
            self.monitor.mirror(list(self.records))
        if periodic:
            self._last["mirror"] = now
            self.monitor.presence(list(self.records))
        if now - self._last["sweep"] >= self.settings.health_sweep_s:
            self._last["sweep"] = now
            self.sweep()

    def _on_exit(self, rec: EngineRecord) -> None:
        proc = rec.proc
        if proc is None:
            return
        proc.join(1.0)
        code = proc.exitcode
        rec.proc = None
        reason = describe_exit(code, self.rt.pop_note(rec.symbol))
        if rec.liquidating:
            if self.liquidations.ended(rec, code, reason, self.shutting_down) and rec.removed \
                    and not self.shutting_down:
                del self.records[rec.symbol]
        elif code == EXIT_SIGNALLED and not (rec.stop_requested or self.shutting_down):
            self._stopped_from_outside(rec)
        elif rec.stop_requested or self.shutting_down:
            self._stopped(rec, code, reason)
        else:
            self._crashed(rec, code, reason)

    def _stopped(self, rec: EngineRecord, code: int | None, reason: str) -> None:
        clean = code in (EXIT_OK, EXIT_SIGNALLED)
        if rec.state in (S.STARTING, S.RUNNING) and not clean:  # it died on its own before our SIGTERM
            rec.last_error = reason
            self.transition(rec, S.CRASHED, pid="",
                            event={"reason": reason, "exit_code": code, "failures": rec.failures})
        rec.last_error = "" if clean else reason
        if rec.state in (S.STARTING, S.RUNNING):
            self.transition(rec, S.STOPPING, write=False)
        if rec.state is not S.STOPPED:
            self.transition(rec, S.STOPPED, pid="")
        if rec.removed and not self.shutting_down:
            del self.records[rec.symbol]
        elif rec.start_after_stop and not self.shutting_down:
            rec.start_after_stop = False
            self.start(rec.symbol)

    def _crashed(self, rec: EngineRecord, code: int | None, reason: str) -> None:
        rec.last_error, rec.crash_at = reason, self.rt.time()
        if code == EXIT_FATAL:
            self._fail(rec, f"engine {rec.symbol} failed: {reason}")
            return
        rec.failures += 1
        self.transition(rec, S.CRASHED, pid="", event={"reason": reason, "exit_code": code, "failures": rec.failures})
        if self.policy.exhausted(rec.failures):
            rec.last_error = f"{reason} ({rec.failures} crashes in a row)"
            self._fail(rec, f"engine {rec.symbol} failed permanently after {rec.failures - 1} restarts")
            return
        delay = self.policy.delay(rec.failures, self.rng)
        rec.restarts += 1
        rec.restart_due = self.rt.monotonic() + delay
        self.transition(rec, S.RESTARTING, next_restart_in_s=round(delay, 3))

    def _fail(self, rec: EngineRecord, headline: str) -> None:
        """Permanently down: the status, what happens to the position and the ``failed`` event in one write,
        then its liquidation (``on_failed: flatten``)."""
        shown, event = self.liquidations.notice(rec, headline)
        self.transition(rec, S.FAILED, event=event, pid="", on_failed=shown)
        self.liquidations.begin(rec, self.shutting_down)

    def _stopped_from_outside(self, rec: EngineRecord) -> None:
        """SIGTERM from someone else (systemd's control-group kill, an operator): a clean stop, not a crash
        (no restart, event, alert or count); it stays stopped until started, or the manager's own stop follows."""
        rec.stop_requested, rec.restart_due, rec.last_error = True, None, ""
        log.warning("engine %s stopped by a signal from outside the manager; not restarted (start it to resume)",
                    rec.symbol, extra={"symbol": rec.symbol})
        if rec.state is not S.STOPPING:
            self.transition(rec, S.STOPPING, write=False)
        self.transition(rec, S.STOPPED, pid="", event={"reason": "signal from outside the manager"})
        if rec.removed:
            del self.records[rec.symbol]

    def _check_heartbeats(self, now: float) -> None:
        for v in self.liveness.check(self.records.values(), now):
            rec, proc = v.rec, v.rec.proc
            if proc is None:
                continue
            if v.kind == "up":
                self._became_running(rec, now)
            elif v.kind in ("fenced", "overdue"):  # paused and taken over / ignored its SIGTERM: no grace left
                log.warning("engine %s: %s; killing it", rec.symbol, v.detail, extra={"symbol": rec.symbol})
                if v.kind == "fenced":
                    rec.stop_requested = True
                    self.transition(rec, S.STOPPING)  # nothing it holds can be written any more
                rec.kill_sent = self.rt.kill(proc)
            elif v.kind == "memory":
                self._restart_for_memory(rec, v.detail)
            else:
                reason = f"hung: no heartbeat for {v.detail}s"
                log.error("engine %s %s; killing", rec.symbol, reason, extra={"symbol": rec.symbol})
                self.store.event("hung", rec.symbol, heartbeat_age_s=v.detail)
                self.rt.write_note(rec.symbol, reason)
                rec.kill_sent = self.rt.kill(proc)

    def _restart_for_memory(self, rec: EngineRecord, detail: str) -> None:
        """Graceful (liveness.py): reported as ``restarted: memory``, never counted toward ``failed``."""
        rec.memory_restarts += 1
        log.warning("engine %s: %s; restarting it", rec.symbol, detail, extra={"symbol": rec.symbol})
        self.store.event("restarted", rec.symbol, reason="memory", detail=detail)
        self.store.write(rec.symbol, memory_restarts=rec.memory_restarts)
        failures = rec.failures
        self.restart_async(rec.symbol)
        rec.failures = failures  # neither forgives nor adds a crash

    def _became_running(self, rec: EngineRecord, now: float) -> None:
        recovered: dict[str, object] | None = None
        if rec.crash_at is not None:
            took = self.rt.time() - rec.crash_at
            self.store.recovery(took)
            recovered, rec.crash_at = {"seconds": f"{took:.3f}"}, None
        self.transition(rec, S.RUNNING, write=False, event=recovered)  # the engine wrote "running" itself
        rec.running_since = now

    def _start_due(self, now: float) -> None:
        starting = sum(1 for r in self.records.values()
                       if r.proc is not None and r.state in (S.STARTING, S.RESTARTING))
        due = sorted((r for r in self.records.values() if r.restart_due is not None and r.restart_due <= now),
                     key=lambda r: r.restart_due or 0.0)
        for rec in due:
            if starting >= self.settings.max_concurrent_starts:
                break  # staggered: the rest start as these come up
            self._spawn(rec)
            starting += 1

    def sweep(self) -> None:
        """Full health sweep: identities and a summary line."""
        sweep(self.records, self.rt.monotonic(), self.settings.max_concurrent_starts, self.rt.is_engine)

    def run_forever(self, should_stop: Callable[[], bool], on_step: Callable[[], None] | None = None) -> None:
        while not should_stop():
            self.step(0.05)
            if on_step is not None:
                on_step()

    def shutdown(self) -> None:
        """Stop every engine gracefully (SIGTERM, then SIGKILL after stop_timeout_s)."""
        self.shutting_down = True
        for rec in self.records.values():
            rec.restart_due = None
            if rec.proc is None and rec.state in (S.STARTING, S.CRASHED, S.RESTARTING):
                self.transition(rec, S.STOPPED, pid="")  # queued or waiting for a restart: cancelled
            elif rec.proc is not None and rec.proc.alive() and not rec.liquidating:
                rec.stop_requested = True
                if rec.state is not S.STOPPING:  # already stopping (a hand-over, a restart): signalled again
                    self.transition(rec, S.STOPPING)
                self.rt.terminate(rec.proc)
        self.pump_until(lambda: all(r.proc is None for r in self.records.values()), self.settings.stop_timeout_s)
        for rec in self.records.values():
            if rec.proc is not None:
                self.rt.kill(rec.proc)
        self.pump_until(lambda: all(r.proc is None for r in self.records.values()), 5.0)
        self.store.flush()
        self.monitor.mirror(list(self.records))
        self.monitor.absent()
