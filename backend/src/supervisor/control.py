"""The manager's control plane: operator commands from Redis, config hot reload, stall alerts.

Runs inside the manager's event loop (``poll`` is called every step), never blocks it: a
stop or restart is started and its progress shows in the engine's status.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import redis
import yaml

from backend.risk.policy_store import PolicyWatcher, publish_json
from backend.src.core.commands import Command, CommandInbox, encode_config
from backend.src.core.config import SourceSpec, SymbolConfig, load_active
from backend.src.core.errors import UsageError
from backend.src.core.keys import Keys
from backend.src.core.settings import Settings, max_engines_rule
from backend.src.market.candles import load_candles
from backend.src.market.perpetual import funding_beside, funding_rates
from backend.src.market.resolve import resolve_sources
from backend.src.trading.factory import prepare_symbol
from backend.src.trading.plugins import source_file

log = logging.getLogger(__name__)


def read_rebalance(path: Path | None) -> dict[str, float]:
    """``{symbol: size_usd}`` from the rebalancer's overlay; a broken overlay is ignored (logged)."""
    if path is None or not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return {str(s): float(v["size_usd"]) for s, v in (raw.get("symbols") or {}).items() if float(v["size_usd"]) > 0}
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError) as exc:
        log.error("rebalance overlay %s ignored: %s", path, exc)
        return {}


@dataclass(frozen=True)
class ConfigSource:
    """Where the engine configs come from: the YAML file, ``--symbols`` and ``--source``."""

    path: Path | None
    cli_symbols: list[str] | None
    source: SourceSpec
    settings: Settings | None = None
    strategy_files: list[Path] = field(default_factory=list)  # LeviLang and plugin files of the last load

    def load(self) -> tuple[dict[str, SymbolConfig], dict[str, SourceSpec]]:
        configs = load_active(self.path, self.cli_symbols, prepare_symbol)
        self.strategy_files[:] = sorted({Path(c.strategy.levilang) for c in configs.values() if c.strategy.levilang}
                                        | {f for c in configs.values() if c.strategy.python
                                           for f in [source_file(c.strategy.python)] if f is not None})
        if self.settings is not None and self.settings.pool is None and len(configs) > self.settings.max_engines:
            raise UsageError(
                f"LEVIBOT_MAX_ENGINES: {len(configs)} symbols exceed this machine's limit of "
                f"{self.settings.max_engines} engines (default: {max_engines_rule()}); raise it if you are sure")
        sizes = read_rebalance(self.overlay)
        configs = {s: c.model_copy(update={"size_usd": sizes[s]}) if s in sizes else c for s, c in configs.items()}
        perpetual = frozenset(s for s, c in configs.items() if c.perpetual)
        sources = resolve_sources(self.source, list(configs), self.settings, perpetual)
        try:  # a replayed perpetual's funding history beside its candles, unless the config names one
            configs = {s: funding_beside(c, sources[s].path, s) for s, c in configs.items()}
        except ValueError as exc:
            raise UsageError(f"{self.path or '--config'}: {exc}") from exc
        for sym, c in configs.items():  # a replay whose funding series stops short would stop mid-way: say so now
            path = sources[sym].path
            if c.perpetual and c.funding_file and sources[sym].kind == "replay" and path is not None:
                candles, _ = load_candles(path)
                gap = funding_rates(c).covers(candles[0].ts, candles[-1].ts) if candles else None
                if gap:
                    raise UsageError(f"{self.path or '--config'}: symbols.{sym}.{gap}")
        return configs, sources

    @property
    def overlay(self) -> Path | None:
        """Per-symbol sizes written by the weekly rebalancer, applied on top of the config."""
        return self.settings.data_dir / "rebalance.yaml" if self.settings is not None else None

    def fingerprint(self) -> tuple[int, ...] | None:
        """Sizes and mtimes of the config, the overlay and the LeviLang and plugin files the config names."""
        out: list[int] = []
        for path in (self.path, self.overlay, *self.strategy_files):
            try:
                st = path.stat() if path is not None else None
            except OSError:
                st = None
            out += [st.st_mtime_ns, st.st_size] if st else [0, 0]
        return tuple(out) if any(out) else None


class Supervised(Protocol):
    """What the control plane needs from the manager (keeps the import one-way)."""

    def configs(self) -> dict[str, SymbolConfig]: ...
    def start(self, symbol: str) -> None: ...
    def stop(self, symbol: str, wait: bool = True) -> None: ...
    def restart_async(self, symbol: str) -> None: ...
    def add(self, symbol: str, config: SymbolConfig, source: SourceSpec) -> None: ...
    def remove(self, symbol: str) -> None: ...
    def update_config(self, symbol: str, config: SymbolConfig) -> None: ...


class ControlPlane:
    def __init__(self, manager: Supervised, r: redis.Redis, keys: Keys, owner: str, config_source: ConfigSource,
                 clock: Callable[[], float] = time.time, policy: PolicyWatcher | None = None) -> None:
        self.m, self.r, self.keys, self.clock = manager, r, keys, clock
        self.config_source = config_source
        self.policy = policy
        self.inbox = CommandInbox(r, keys, owner, consumer=f"{os.uname().nodename}-{os.getpid()}")
        self.fingerprint = config_source.fingerprint()
        # A file change is applied once the file has stopped changing for one check (1 s), and
        # only if two reads of it agree (config.read_settled): a writer mid-save is never applied.
        self.pending_fp = self.fingerprint
        self._last = {"commands": 0.0, "file": 0.0, "parity": time.monotonic()}
        self.replays: set[str] = set()  # engines started by ``replay``, not from the config

    def open(self) -> None:
        self.inbox.ensure_group()
        for sym, cfg in self.m.configs().items():
            self.publish(sym, cfg)
        if self.policy is not None:
            self.policy.reload()

    def publish(self, symbol: str, cfg: SymbolConfig) -> None:
        """Engines poll the version with their heartbeat and apply a new config within a beat."""
        publish_json(self.r, self.keys.config(symbol), encode_config(cfg.model_dump(mode="json")))

    def poll(self) -> None:
        now = time.monotonic()
        try:
            if now - self._last["commands"] >= 0.1:
                self._last["commands"] = now
                for cmd in self.inbox.fetch():
                    self.handle(cmd)
            if now - self._last["file"] >= 1.0:
                self._last["file"] = now
                fp = self.config_source.fingerprint()
                if fp != self.fingerprint and fp == self.pending_fp:  # unchanged for a whole second
                    self.fingerprint = fp
                    log.info("config file changed; reloading")
                    with contextlib.suppress(UsageError):  # logged and recorded; old config stays
                        self.reload()
                self.pending_fp = fp
                if self.policy is not None and self.policy.changed():
                    log.info("risk policy file changed; reloading")
                    with contextlib.suppress(UsageError):
                        self.policy.reload()
            self.check_parity(now)
        except redis.RedisError as exc:
            log.debug("control plane waiting for redis: %s", exc)

    def check_parity(self, now: float) -> None:
        """Every ``LEVIBOT_PARITY_EVERY_S``: a parity run per engine on the workers (an unexplained drift is
        alerted by the job); not without workers to run it."""
        s = self.config_source.settings
        if s is None or s.parity_every_s <= 0 or s.workers <= 0 or not s.redis_url \
                or now - self._last["parity"] < s.parity_every_s:
            return
        self._last["parity"] = now
        from backend.src.core.runs import enqueue  # noqa: PLC0415 - RQ's client, only when it is time

        try:
            for sym in sorted(set(self.m.configs()) - self.replays):
                enqueue(s, s.redis_url, self.keys, "parity", {"symbol": sym, "scheduled": True},
                        "backend.ml.research.parity.run_parity", sym)
        except Exception:  # noqa: BLE001 - a check that cannot be queued is retried next time, never fatal
            log.exception("parity checks not queued")

    def handle(self, cmd: Command) -> None:
        now = self.clock()
        if self.inbox.expired(cmd, now):
            self.finish(cmd, "expired", f"older than {self.inbox.max_age_s:.0f}s; not carried out")
            return
        try:
            detail = self.execute(cmd)
        except UsageError as exc:
            self.finish(cmd, "error", str(exc))
            log.warning("command %s %s refused: %s", cmd.action, cmd.symbol, exc)
            return
        self.finish(cmd, "done", detail)
        log.info("command %s %s: %s", cmd.action, cmd.symbol or "-", detail, extra={"command_id": cmd.command_id})

    def finish(self, cmd: Command, status: Literal["done", "error", "expired"], detail: str) -> None:
        """Record the result for ``GET /commands/{id}`` and, for a symbol, in its status."""
        now = self.clock()
        if cmd.symbol and cmd.symbol in self.m.configs():
            self.r.hset(self.keys.state(cmd.symbol), mapping={
                "last_command": f"{cmd.action}: {status} ({detail})", "last_command_at": f"{now:.3f}"})
        self.inbox.done(cmd, status, detail, now)

    def execute(self, cmd: Command) -> str:
        if cmd.action == "reload":
            detail = self.reload()
            return f"{detail}; {self.policy.reload()}" if self.policy is not None else detail
        if cmd.action in ("promote", "rollback"):
            return self.model_command(cmd)
        if cmd.action == "replay":
            return self.replay(cmd)
        if cmd.action not in ("start", "stop", "restart"):
            raise UsageError(f"action: unknown action {cmd.action!r}")
        if cmd.symbol not in self.m.configs():
            raise UsageError(f"symbol: {cmd.symbol or '(none)'} is not managed here")
        if cmd.action == "start":
            self.m.start(cmd.symbol)
            return "starting"
        if cmd.action == "stop":
            self.m.stop(cmd.symbol, wait=False)
            return "stopping"
        self.m.restart_async(cmd.symbol)
        return "restarting"

    def model_command(self, cmd: Command) -> str:
        """Promote a model version or roll back to the previous one; engines pick it up on their own
        (their model watcher follows the registry's ``current`` link)."""
        from backend.src.models.registry import Registry  # noqa: PLC0415 - the registry's file operations only

        if self.config_source.settings is None:
            raise UsageError("models: this manager has no data dir")
        reg = Registry(self.config_source.settings.models_dir)
        if cmd.action == "rollback":
            return f"production model -> {reg.rollback()}"
        reg.promote(cmd.arg, reason="operator (API)")
        return f"production model -> {cmd.arg}"

    def replay(self, cmd: Command) -> str:
        """A backtest's candle file through a new paper engine at the requested speed, shown like any
        engine. It is named ``R<n><SYMBOL>`` with the first ``n`` that has no journal yet, so every replay
        starts at the file's first candle; replays are not in the config file, so a reload keeps them."""
        from backend.ml.research.ui_backtest import BacktestSpec, data_files, symbol_config  # noqa: PLC0415

        settings = self.config_source.settings
        if settings is None:
            raise UsageError("replay: this manager has no data dir")
        try:
            req = json.loads(cmd.arg)
            spec, symbol, speed = BacktestSpec.model_validate(req["spec"]), str(req["symbol"]), float(req["speed"])
            cfg = symbol_config(spec)
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"replay: malformed request ({str(exc).splitlines()[0]})") from exc
        path = data_files(settings).get(symbol)
        if path is None or not 0 < speed <= 1e6:
            raise UsageError(f"replay: no candle file for {symbol}" if path is None else "speed: 0 < speed <= 1e6")
        name = next(n for n in (f"R{k}{symbol}"[:20] for k in itertools.count(1))
                    if n not in self.m.configs() and not (settings.journal_dir / f"{n}.jsonl").exists())
        self.replays.add(name)
        self.publish(name, cfg)
        self.m.add(name, cfg, SourceSpec("replay", path=path, speed=speed))
        return f"replaying {path.name} as {name} at {speed:g}x"

    def reload(self) -> str:
        """Validate the whole config first; apply only if all of it is valid."""
        try:
            configs, sources = self.config_source.load()
        except Exception as exc:  # noqa: BLE001 - whatever a candidate config does, the running one stays
            reason = str(exc) if isinstance(exc, UsageError) else \
                f"config: {type(exc).__name__} while loading it: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            log.error("config rejected, previous config stays in force: %s", reason, extra={"alert": True})
            self.r.xadd(self.keys.events, {"type": "config_rejected", "symbol": "", "reason": reason,
                                           "ts": f"{self.clock():.3f}"}, maxlen=10_000, approximate=True)
            raise UsageError(reason) from None
        current = self.m.configs()
        added = [s for s in configs if s not in current]
        removed = [s for s in current if s not in configs and s not in self.replays]
        changed = [s for s in configs if s in current and configs[s] != current[s]]
        for sym in removed:
            self.m.remove(sym)
        for sym in changed:
            self.m.update_config(sym, configs[sym])
            self.publish(sym, configs[sym])
        for sym in added:
            self.publish(sym, configs[sym])
            self.m.add(sym, configs[sym], sources[sym])
        return f"config applied: added {added or '[]'}, removed {removed or '[]'}, changed {changed or '[]'}"
