"""``python -m backend.src.analytics serve | sql "SELECT ..." | backfill``

* ``serve`` — the analytics process the manager supervises: opens the store (chDB under
  ``<data dir>/clickhouse/``, served on loopback for the API, the bot and the CLI; or the server at
  ``LEVIBOT_CLICKHOUSE_URL``), applies the migrations and ships every ``LEVIBOT_ANALYTICS_INTERVAL_S``.
  A store that is down is waited for; nothing is lost meanwhile (``shipper.py``).
* ``sql`` — one read query (anything but a SELECT is refused), rows printed as TSV.
* ``backfill`` — rebuilds the journal tables (fills, orders, day openings) from the journals. Refused
  while an analytics process ships on this data dir (stop the manager first).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import NoReturn

import redis
from tqdm import tqdm

from backend.src.analytics import schema
from backend.src.analytics.server import StoreServer, is_read, new_password
from backend.src.analytics.shipper import Batch, Shipper
from backend.src.analytics.store import (
    ChdbStore,
    HttpStore,
    Store,
    StoreError,
    insert,
    lock_store,
    owned_store,
    store_dir,
    url_file,
)
from backend.src.core import logging_setup
from backend.src.core.cli import OneLineParser
from backend.src.core.errors import EXIT_OK, EXIT_USAGE, UsageError
from backend.src.core.fsio import write_private
from backend.src.core.keys import Keys
from backend.src.core.redis_launcher import discover_url
from backend.src.core.redis_url import connect as redis_connect
from backend.src.core.settings import Settings, cli_path, cli_settings

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0
LOCK_WAIT_S = 30.0  # a CLI query may own the embedded store for a moment


def open_store(settings: Settings) -> tuple[Store, StoreServer | None]:
    if settings.clickhouse_url:
        return HttpStore(settings.clickhouse_url.get_secret_value()), None
    store = ChdbStore(store_dir(settings) / "db")
    server = StoreServer(store, new_password(), port=settings.analytics_port).start()
    write_private(url_file(settings), server.url)  # 0600, whole or not at all: it holds this start's password
    return store, server


def serve(settings: Settings, stop: threading.Event) -> int:
    try:
        lock = lock_store(settings, wait_s=LOCK_WAIT_S)
    except BlockingIOError:
        raise UsageError(f"another analytics process ships on {settings.data_dir}") from None
    store, server = open_store(settings)
    r = redis_connect(discover_url(settings), timeout=5.0)
    shipper = Shipper(store, r, Keys(settings.namespace), settings.journal_dir)
    failures, ready = 0, False
    try:
        while not stop.is_set():
            try:
                if not ready:
                    if isinstance(store, HttpStore):
                        store.ensure_database()
                    schema.migrate(store)
                    shipper.load_checkpoints()
                    ready = True
                    log.info("analytics: shipping to %s", "the embedded store" if server else "ClickHouse")
                shipper.cycle()
                if failures:
                    log.info("analytics: store and sources answer again after %d failed cycles", failures)
                failures = 0
                stop.wait(settings.analytics_interval_s)
            except (StoreError, redis.RedisError) as exc:
                failures += 1
                ready = False  # checkpoints are read again from the store once it answers
                wait = min(MAX_BACKOFF_S, settings.analytics_interval_s * 2 ** min(failures, 8))
                log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                        "analytics: %s; nothing lost, trying again (every %.0fs at most)", exc, MAX_BACKOFF_S)
                stop.wait(wait)
        if ready:  # a last cycle: what the engines wrote while the fleet stopped
            try:
                shipper.cycle()
            except (StoreError, redis.RedisError) as exc:
                log.warning("analytics: last cycle not shipped (%s); the next start ships it", exc)
        log.info("analytics stopped: %d rows shipped", shipper.shipped)
        return EXIT_OK
    finally:
        if server is not None:
            url_file(settings).unlink(missing_ok=True)
            server.stop()
        store.close()
        r.close()
        os.close(lock)


def sql(settings: Settings, query: str, header: bool) -> int:
    if not is_read(query):
        raise UsageError("sql: only a read query (SELECT ...) is allowed")
    if not settings.clickhouse_url and not (store_dir(settings) / "db").exists():
        raise UsageError(f"sql: no analytics store in {settings.data_dir} yet (the manager creates it; "
                         "or set LEVIBOT_CLICKHOUSE_URL)")
    with owned_store(settings, wait_s=LOCK_WAIT_S) as store:
        fmt = "TabSeparatedWithNames" if header else "TabSeparated"
        out = store.execute(f"{query.strip().rstrip(';')} FORMAT {fmt}", readonly=True)
    sys.stdout.write(out)
    return EXIT_OK


def backfill(settings: Settings) -> int:
    """The journal tables rebuilt from the journals (fills, orders, day openings)."""
    try:
        lock = lock_store(settings, wait_s=5.0)
    except BlockingIOError:
        raise UsageError("backfill: an analytics process is shipping on this data dir; stop the manager first") \
            from None
    try:
        store = HttpStore(settings.clickhouse_url.get_secret_value()) if settings.clickhouse_url \
            else ChdbStore(store_dir(settings) / "db")
        try:
            if isinstance(store, HttpStore):
                store.ensure_database()
            schema.migrate(store)
            for table in ("fills", "orders", "day_marks"):
                store.execute(f"TRUNCATE TABLE {table}")
            shipper = Shipper(store, None, Keys(settings.namespace), settings.journal_dir)
            batch = Batch()
            paths = shipper.journals()
            tables = ("fills", "orders", "day_marks")
            # a bar on a terminal (one step per journal read, per table inserted); nothing in a pipe or a log
            with tqdm(total=len(paths) + len(tables), desc="backfill", unit="step",
                      disable=not sys.stderr.isatty()) as bar:
                for path in paths:
                    shipper.read_journals(batch, [path])
                    bar.update()
                counts = {}
                for table in tables:
                    counts[table] = insert(store, table, batch.tables[table])
                    bar.update()
        finally:
            store.close()
    finally:
        os.close(lock)
    print("backfill: " + ", ".join(f"{n} {t}" for t, n in counts.items()) + f" from {settings.journal_dir}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="analytics", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=cli_path, default=None, help="overrides LEVIBOT_DATA_DIR")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="ship into the store (the manager starts this)")
    q = sub.add_parser("sql", help="run one read query, rows as TSV")
    q.add_argument("query")
    q.add_argument("--header", action="store_true", help="column names first")
    sub.add_parser("backfill", help="rebuild fills, orders and day openings from the journals")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = cli_settings(args.data_dir)
        if args.command == "serve":
            logging_setup.configure(settings.log_dir, "analytics", level=settings.log_level,
                                    retention_days=settings.log_retention_days,
                                    secrets=[settings.clickhouse_url.get_secret_value()] if settings.clickhouse_url
                                    else [])
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            return serve(settings, stop)
        if args.command == "sql":
            return sql(settings, args.query, args.header)
        return backfill(settings)
    except (UsageError, StoreError) as exc:
        print(f"analytics: error: {str(exc).splitlines()[0] if str(exc) else exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else 1


def main_exit() -> NoReturn:
    sys.exit(main())

