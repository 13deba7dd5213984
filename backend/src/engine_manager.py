"""``python -m backend.src.engine_manager --symbols BTCUSDT,ETHUSDT [--source ...] [--config FILE]``

Validates everything before writing anything, takes the data-dir lock, starts (or
connects to) Redis, reconciles with what a previous run left, then supervises one engine
process per symbol until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import NoReturn

import httpx
import redis
from pydantic import ValidationError

from backend.risk.policy import RiskPolicy, load_policy
from backend.risk.policy_store import PolicyWatcher
from backend.src.analytics import store as analytics_store
from backend.src.core import logging_setup
from backend.src.core.cli import OneLineParser
from backend.src.core.config import SourceSpec, SymbolConfig, parse_source, parse_symbols
from backend.src.core.errors import EXIT_OK, EXIT_USAGE, RedisUnavailable, UsageError
from backend.src.core.keys import Keys
from backend.src.core.redis_launcher import EmbeddedRedis, embedded_password, ping
from backend.src.core.redis_url import connect, redact
from backend.src.core.settings import Settings, cli_path, secret_env_names, secret_values
from backend.src.models.backends import Backends
from backend.src.supervisor.alerts import AlertDispatcher, build_sinks
from backend.src.supervisor.children import AnalyticsProcess, ApiProcess, BotProcess, ChildProcess
from backend.src.supervisor.control import ConfigSource, ControlPlane
from backend.src.supervisor.engine_record import default_owner
from backend.src.supervisor.notify import build_notifiers
from backend.src.supervisor.pool import Pool, Solo
from backend.src.supervisor.procs import PRELOAD, SystemRuntime
from backend.src.supervisor.reconcile import refuse_foreign_leases
from backend.src.supervisor.watchdog import Watchdog
from backend.src.supervisor.workers import WorkerPool
from backend.src.trading.plugins import PRELOAD_ENV, module_of
from backend.src.trading.strategies.ensemble import ml_preload
from backend.src.venue.factory import check_venue

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="levibot", description="Supervise one trading engine process per symbol.")
    p.add_argument("--symbols", default=None,
                   help="comma-separated, e.g. BTCUSDT,ETHUSDT,SOLUSDT (default: the config's symbols:)")
    p.add_argument("--source", default="synthetic",
                   help="synthetic | replay:PATH (file, dir or {symbol} template) | live:EXCHANGE (ccxt id, e.g. "
                        "live:binance)")
    p.add_argument("--config", type=cli_path, default=None, help="per-symbol engine config (YAML)")
    p.add_argument("--data-dir", type=cli_path, default=None, help="overrides LEVIBOT_DATA_DIR")
    p.add_argument("--replay-speed", type=float, default=None, help="simulated seconds per wall second")
    p.add_argument("--api-port", type=int, default=None, help="API port (default 8000, LEVIBOT_API_PORT)")
    p.add_argument("--no-api", action="store_true", help="do not start the API process")
    p.add_argument("--no-analytics", action="store_true",
                   help="do not start the analytics process (history in ClickHouse/chDB)")
    p.add_argument("--no-bot", action="store_true",
                   help="do not start the Telegram bot (started when LEVIBOT_TELEGRAM_BOT_TOKEN is set)")
    p.add_argument("--workers", type=int, default=None,
                   help="RQ workers for sentiment/on-chain jobs (default 2, LEVIBOT_WORKERS; 0: none)")
    p.add_argument("--pool", default=None, metavar="NAME",
                   help="share the config's symbols with every manager started with this pool name on the same "
                        "Redis (LEVIBOT_REDIS_URL): claims, fair share, failover when a manager dies")
    p.add_argument("--max-engines", type=int, default=None, metavar="N",
                   help="engines this manager runs at most (default: this machine's limit, LEVIBOT_MAX_ENGINES)")
    p.add_argument("--live", action="store_true",
                   help="REAL orders (needs --source live:EXCHANGE and LEVIBOT_EXCHANGE_API_KEY/_SECRET)")
    return p


def load_settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.replay_speed is not None:
        overrides["replay_speed"] = args.replay_speed
    if args.api_port is not None:
        overrides["api_port"] = args.api_port
    if args.no_api:
        overrides["api_enabled"] = False
    if args.no_bot:
        overrides["bot_enabled"] = False
    if args.no_analytics:
        overrides["analytics_enabled"] = False
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.pool is not None:
        overrides["pool"] = args.pool
    if args.max_engines is not None:
        overrides["max_engines"] = args.max_engines
    overrides["live_trading"] = bool(args.live)  # only the flag turns it on, never the environment alone
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "settings"
        raise UsageError(f"LEVIBOT_{field.upper()}: {err['msg']}") from exc


class DataDirLock:
    """One manager per data dir: an flock the kernel releases if we die."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "manager.lock"
        self.fd = -1

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 32).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise UsageError(
                f"another manager (pid {holder}) is already running on data dir {self.path.parent}"
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Stopper:
    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # 1. validate everything; nothing is written before this passes
        settings = load_settings(args)
        secret_names = set(secret_env_names(settings))
        for name in [k for k in os.environ if k.upper() in secret_names]:  # read case-insensitively: any case
            del os.environ[name]  # held in `settings` now; no child (the forkserver, engines) inherits them
        cli_symbols = parse_symbols(args.symbols) if args.symbols is not None else None
        source = parse_source(args.source)
        check_venue(settings, source)
        config_source = ConfigSource(args.config, cli_symbols, source, settings)
        loaded = config_source.load()  # validated once here (replay files parsed, live markets checked)
        policy = load_policy(settings.risk_policy)
        if settings.data_dir.exists() and not settings.data_dir.is_dir():
            raise UsageError(f"LEVIBOT_DATA_DIR: {settings.data_dir} is not a directory")
        if settings.pool is not None and settings.redis_url is None:
            raise UsageError("--pool: set LEVIBOT_REDIS_URL to the Redis every member of the pool reaches")
        if settings.redis_url is not None:  # an external Redis: refuse foreign leases before writing anything
            check_redis(settings.redis_url, settings, [] if settings.pool else list(loaded[0]))
        # 2. exclusive data dir
        lock = DataDirLock(settings.data_dir)
        lock.acquire()
    except (UsageError, RedisUnavailable) as exc:
        print(f"levibot: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return supervise(settings, config_source, loaded, policy)
    except (UsageError, RedisUnavailable) as exc:
        log.error("%s", exc, extra={"console": False})  # the file gets it; stderr gets one line
        print(f"levibot: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        lock.release()


def check_redis(url: str, settings: Settings, symbols: list[str]) -> None:
    """Redis answers and none of ``symbols`` is leased by another manager's live engine."""
    r = connect(url)
    try:
        ping(r, url)
        refuse_foreign_leases(r, Keys(settings.namespace), default_owner(settings.data_dir), symbols)
    except redis.RedisError as exc:
        raise RedisUnavailable(f"redis at {redact(url)}: {exc}") from exc
    finally:
        r.close()


def supervise(settings: Settings, config_source: ConfigSource,
              loaded: tuple[dict[str, SymbolConfig], dict[str, SourceSpec]], policy: RiskPolicy) -> int:
    logging_setup.configure(settings.log_dir, "manager", level=settings.log_level,
                            retention_days=settings.log_retention_days, console=True,
                            secrets=secret_values(settings))
    embedded: EmbeddedRedis | None = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.redis_dir, settings.embedded_redis_port, die_with_parent=True,
                                 password=embedded_password(settings.redis_dir)).start()
        settings = settings.model_copy(update={"redis_url": embedded.url})
    url = settings.redis_url or ""
    r = connect(url)
    try:
        ping(r, url)
        stopper = Stopper()
        signal.signal(signal.SIGTERM, stopper)
        signal.signal(signal.SIGINT, stopper)
        configs, sources = loaded
        runtime = SystemRuntime(settings.data_dir, forkserver_preload(settings, sources, configs))
        manager, pool = build_watchdog(settings, r, loaded, runtime, policy)
        control = ControlPlane(pool.supervised, r, manager.keys, manager.owner, config_source,
                               policy=PolicyWatcher(r, manager.keys, settings.risk_policy))
        control.open()
        alerts = start_alerts(settings, url, manager.keys)
        children = build_children(settings)
        workers = WorkerPool(settings, url, lambda: list(manager.records))
        log.info("manager up: %d engines, redis %s, data dir %s", len(configs), redact(url),
                 settings.data_dir, extra={"symbols": ",".join(configs)})
        manager.start_all()
        pool.join()
        for child in children:
            child.start()
        children += start_bot(settings)
        workers.start()

        def should_stop() -> bool:
            if embedded is not None and not embedded.alive() and not stopper.requested:
                log.error("embedded redis died; restarting it on port %s", embedded.port)
                embedded.start()
            return stopper.requested

        def on_step() -> None:
            pool.step()
            control.poll()
            for child in children:
                child.supervise()
            workers.step()

        try:
            manager.run_forever(should_stop, on_step)
        finally:
            log.info("shutting down: stopping %d engines", len(manager.records))
            try:
                pool.leave()  # in a pool the others recompute their shares now, and claim as our engines stop
                stop_all(children, workers, manager)
                pool.release_all()
            finally:
                if alerts is not None:
                    alerts.stop()
        return EXIT_OK
    except redis.RedisError as exc:
        raise RedisUnavailable(f"redis at {redact(url)}: {exc}") from exc
    finally:
        r.close()
        if embedded is not None:
            embedded.stop()


def build_watchdog(settings: Settings, r: redis.Redis, loaded: tuple[dict[str, SymbolConfig], dict[str, SourceSpec]],
                   runtime: SystemRuntime, policy: RiskPolicy) -> tuple[Watchdog, Pool | Solo]:
    """Alone: every symbol of the config, after adopting what a previous run left. In a pool the watchdog
    starts empty and the pool adds the symbols this manager claims."""
    configs, sources = loaded
    if settings.pool is None:
        manager = Watchdog(settings, r, configs, sources, runtime=runtime, policy=policy)
        manager.check_leases()
        manager.reconcile()
        return manager, Solo(manager)
    manager = Watchdog(settings, r, {}, sources, runtime=runtime, policy=policy)
    return manager, Pool(settings.pool, manager, r, configs, sources)


def build_children(settings: Settings) -> list[ChildProcess]:
    """The API and the analytics process, as the settings ask (started after the engines)."""
    children: list[ChildProcess] = [ApiProcess(settings)] if settings.api_enabled else []
    if settings.analytics_enabled and (why := analytics_store.unavailable(settings)):
        log.warning("analytics off: %s", why)
    elif settings.analytics_enabled:
        children.append(AnalyticsProcess(settings))
    return children


def stop_all(children: list[ChildProcess], workers: WorkerPool, manager: Watchdog) -> None:
    """The API, the bot and the workers, then the engines (state flushed), then the analytics process,
    which ships what the engines wrote while stopping."""
    for child in children:
        if not isinstance(child, AnalyticsProcess):
            child.stop()
    workers.stop()
    manager.shutdown()
    for child in children:
        if isinstance(child, AnalyticsProcess):
            child.stop(timeout=30.0)


def forkserver_preload(settings: Settings, sources: dict[str, SourceSpec],
                       configs: dict[str, SymbolConfig] | None = None) -> list[str]:
    """Modules every engine needs, imported once in the forkserver rather than in every engine start
    (strategy plugins too: named for ``engine/plugin_preload.py`` in the environment the forkserver inherits)."""
    preload = list(PRELOAD)
    specs = sorted({c.strategy.python for c in (configs or {}).values() if c.strategy.python})
    if specs:
        os.environ[PRELOAD_ENV] = ",".join(sorted({module_of(s) for s in specs}))
        preload.append("backend.src.engine.plugin_preload")
    if any(s.kind == "live" for s in sources.values()):
        preload += ["ccxt", "backend.src.market.live_source", "backend.src.venue.live"]
    if (settings.models_dir / "current").is_symlink():  # a production model: ONNX Runtime and the features
        preload += ml_preload(Backends.of(settings))
    return preload + main_module_preload()


def main_module_preload() -> list[str]:
    """multiprocessing re-runs the parent's main module in every child it starts (as
    ``__mp_main__``). Run as ``-m backend.src.engine_manager`` that re-run imported the whole
    manager in every engine (~80 ms and ~9 MB each); imported once in the forkserver, it only
    re-executes the module body. ``__main__`` covers a main script (the ``levibot`` console
    script), which the forkserver then imports once and children skip."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    return ["__main__", name] if name and name != "__main__" else ["__main__"]


def start_bot(settings: Settings) -> list[ChildProcess]:
    """The Telegram bot, started when a token is set (and not --no-bot); [] otherwise."""
    if not settings.telegram_bot_token or not settings.bot_enabled:
        return []
    if not settings.telegram_chats:
        log.warning("telegram bot not started: LEVIBOT_TELEGRAM_CHAT_ID is not set (it answers only the chats listed)")
        return []
    bot = BotProcess(settings)
    bot.start()
    return [bot]


def start_alerts(settings: Settings, url: str, keys: Keys) -> AlertDispatcher | None:
    client = httpx.Client(timeout=settings.alert_timeout_s)
    sinks = build_sinks(settings, client)
    r = connect(url, timeout=2.0)
    hooks = settings.notify_webhooks.get_secret_value() if settings.notify_webhooks else ""
    events = frozenset(e.strip() for e in settings.notify_events.split(",") if e.strip())
    notifiers = build_notifiers(hooks, events, client, r, keys)
    if not sinks and not notifiers:
        log.info("alerts: no Telegram, Slack or notification webhook configured; events stay in the Redis stream only")
        return None
    dispatcher = AlertDispatcher(r, keys, sinks, window_s=settings.alert_window_s,
                                 consumer=f"{socket.gethostname()}-{os.getpid()}", notifiers=notifiers)
    dispatcher.start()
    log.info("alerts: sending to %s", ", ".join([s.name for s in sinks] + [n.sink.name for n in notifiers]))
    return dispatcher


def main_exit() -> NoReturn:
    """Console-script entry point (``levibot``)."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
