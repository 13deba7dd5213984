"""The analytics tables, in versioned migrations applied at start (``migrate``).

One SQL for chDB and a real ClickHouse, down to old servers: plain MergeTree, ``ORDER BY`` keys,
times as integer milliseconds (``ts``: candle time, the engine's clock; ``at``: wall time, seconds).
Each table's key is the idempotent one the shipper resumes from: journal rows by (symbol, seq),
events by stream id (ms, n), candles by (symbol, ts).
"""

from __future__ import annotations

import logging
import time

from backend.src.analytics.store import Store, insert, rows

log = logging.getLogger(__name__)

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "journal, events, candles, equity, predictions", [
        """CREATE TABLE IF NOT EXISTS fills (symbol String, seq UInt64, gen UInt64, ts UInt64, at Float64,
            order_id String, side String, qty Float64, price Float64, fee Float64, liquidity String,
            reason String, source String) ENGINE = MergeTree ORDER BY (symbol, seq)""",
        """CREATE TABLE IF NOT EXISTS orders (symbol String, seq UInt64, gen UInt64, type String, order_id String,
            order_kind String, side String, qty Float64, price Float64, ts UInt64, reason String)
            ENGINE = MergeTree ORDER BY (symbol, seq)""",
        """CREATE TABLE IF NOT EXISTS day_marks (symbol String, seq UInt64, gen UInt64, day String, equity Float64,
            price Float64)
            ENGINE = MergeTree ORDER BY (symbol, seq)""",
        """CREATE TABLE IF NOT EXISTS events (ms UInt64, n UInt64, type String, symbol String, reason String,
            fields String) ENGINE = MergeTree ORDER BY (ms, n)""",
        """CREATE TABLE IF NOT EXISTS candles (symbol String, ts UInt64, open Float64, high Float64, low Float64,
            close Float64, volume Float64, position Float64, equity Float64, at Float64, prob_up Nullable(Float64),
            confidence Nullable(Float64), model String) ENGINE = MergeTree ORDER BY (symbol, ts)""",
        """CREATE TABLE IF NOT EXISTS equity (symbol String, ts UInt64, equity Float64, position Float64)
            ENGINE = MergeTree ORDER BY (symbol, ts)""",
        """CREATE TABLE IF NOT EXISTS predictions (symbol String, ts UInt64, prob_up Float64, confidence Float64,
            model String, close Float64, next_close Float64) ENGINE = MergeTree ORDER BY (symbol, ts)""",
    ]),
    (2, "perpetual funding payments (liquidations are fills with reason liquidation)", [
        """CREATE TABLE IF NOT EXISTS funding (symbol String, seq UInt64, gen UInt64, ts UInt64, at Float64,
            rate Float64, qty Float64, price Float64, amount Float64) ENGINE = MergeTree ORDER BY (symbol, seq)""",
    ]),
]
TABLES = ("fills", "orders", "day_marks", "events", "candles", "equity", "predictions", "funding")


def migrate(store: Store) -> list[int]:
    """Apply the migrations not applied yet, in order; the versions applied now."""
    store.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at Float64) "
                  "ENGINE = MergeTree ORDER BY version")
    done = {int(r["version"]) for r in rows(store, "SELECT version FROM schema_migrations")}
    applied = []
    for version, name, statements in MIGRATIONS:
        if version in done:
            continue
        for sql in statements:
            store.execute(sql)
        insert(store, "schema_migrations", [{"version": version, "name": name, "applied_at": time.time()}])
        log.info("analytics schema: migration %d applied (%s)", version, name)
        applied.append(version)
    return applied
