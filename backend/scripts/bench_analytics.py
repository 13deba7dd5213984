"""Analytics benchmark: ``python -m backend.scripts.bench_analytics [--fills 1000000] [--candles 10000000]
[--repeat 30] [--lag-seconds 60]``.

1. Queries: the embedded store (chDB, in this process, in a temporary directory) is filled with
   ``--fills`` fills and ``--candles`` candles over 50 symbols (a candle a minute: 200,000 minutes,
   ~139 days each, with their day openings, equity minutes and predictions), generated in SQL; then
   each query the dashboard, the API and Telegram run is timed ``--repeat`` times: min / median / p95.
2. Shipping lag (``--lag-seconds`` > 0): the real manager with 3 synthetic engines and its analytics
   process; every fill's journal time against the moment it is first seen in the store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from backend.src.analytics import queries, schema
from backend.src.analytics.store import ChdbStore, HttpStore, Store, rows

SYMBOLS = 50
START_MS = queries.ms(dt.date(2026, 7, 1))


def fill_store(store: Store, n_fills: int, n_candles: int) -> None:
    per = n_candles // SYMBOLS
    sym = f"concat('S', toString(number % {SYMBOLS}), 'USDT')"
    store.execute(f"""INSERT INTO candles SELECT {sym}, {START_MS} + intDiv(number, {SYMBOLS}) * 60000,
        100 + (number % 97) / 10, 101, 99, 100 + (number % 89) / 10, 10, 0, 10000 + (number % 1000), 0,
        (number % 100) / 100, 0.5, 'm1' FROM numbers({per * SYMBOLS})""")
    store.execute(f"""INSERT INTO equity SELECT {sym}, {START_MS} + intDiv(number, {SYMBOLS}) * 60000,
        10000 + (number % 1000), 0 FROM numbers({per * SYMBOLS})""")
    store.execute(f"""INSERT INTO predictions SELECT {sym}, {START_MS} + intDiv(number, {SYMBOLS}) * 60000,
        (number % 100) / 100, 0.5, 'm1', 100, 100 + (number % 7) - 3 FROM numbers({per * SYMBOLS})""")
    span = per * 60_000
    store.execute(f"""INSERT INTO fills SELECT {sym}, intDiv(number, {SYMBOLS}) + 1, 1,
        {START_MS} + intDiv(number, {SYMBOLS}) * {max(1, span * SYMBOLS // max(n_fills, 1))}, 0,
        concat('o', toString(number)), if(number % 2, 'buy', 'sell'), 1, 100, 0.1, 'taker', '', 'bench'
        FROM numbers({n_fills})""")
    days = per // 1440 + 1
    store.execute(f"""INSERT INTO day_marks SELECT {sym}, intDiv(number, {SYMBOLS}) + 1, 1,
        toString(toDate('2026-07-01') + intDiv(number, {SYMBOLS})), 10000 + (number % 313), 100
        FROM numbers({days * SYMBOLS})""")
    store.execute(f"""INSERT INTO events SELECT {START_MS} + number * 3600000, 0,
        ['crashed', 'recovered', 'hung', 'stalled'][number % 4 + 1], {sym}, '', '{{}}' FROM numbers(20000)""")


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
    return f"{xs[0]:.1f} / {statistics.median(xs):.1f} / {p95:.1f} ms"


def bench_queries(args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory(prefix="levibot-bench-analytics-") as tmp:
        store = ChdbStore(Path(tmp) / "db")
        schema.migrate(store)
        t0 = time.perf_counter()
        fill_store(store, args.fills, args.candles)
        count = {t: rows(store, f"SELECT count() AS n FROM {t}")[0]["n"]  # noqa: S608 - our table names
                 for t in ("fills", "candles", "equity", "predictions", "day_marks", "events")}
        print(f"store: {', '.join(f'{n:,} {t}' for t, n in count.items())} (generated in "
              f"{time.perf_counter() - t0:.1f} s)")
        end = dt.date(2026, 7, 1) + dt.timedelta(days=args.candles // SYMBOLS // 1440)
        month = (queries.ms(end - dt.timedelta(days=29)), queries.ms(end + dt.timedelta(days=1)))
        cases: dict[str, Callable[[], object]] = {
            "pnl per symbol per day, 90 days": lambda: queries.pnl(store, end - dt.timedelta(days=89), end),
            "pnl per week, one symbol, 366 days": lambda: queries.pnl(store, end - dt.timedelta(days=365), end,
                                                                      "week", "S7USDT"),
            "equity curve, one symbol, 30 days": lambda: queries.equity(store, "S7USDT", *month),
            "fills, one symbol, 30 days, a page": lambda: queries.fills(store, "S7USDT", *month, 500, 0),
            "fills, every symbol, 30 days, page 10": lambda: queries.fills(store, None, *month, 500, 4500),
            "incidents per engine per day, 30 days": lambda: queries.crashes(store, *month),
            "calibration, 30 days": lambda: queries.calibration(store, *month),
        }
        every: list[float] = []
        print(f"queries, min / median / p95 of {args.repeat} runs:")
        for name, fn in cases.items():
            fn()  # warm
            xs = timed(fn, args.repeat)
            every += xs
            print(f"  {name:40s} {stats(xs)}")
        print(f"  {'all of them':40s} {stats(every)}")
        store.close()
        xs = sorted(every)
        return xs[int(round(0.95 * (len(xs) - 1)))]


def bench_lag(seconds: float) -> None:
    import psutil  # noqa: PLC0415

    from backend.scripts.bench_fleet import fleet  # noqa: PLC0415

    with fleet("bench-analytics", "benchan:", ["BTCUSDT", "ETHUSDT", "SOLUSDT"], analytics_enabled="true",
               api_enabled="false", workers="0", synthetic_interval_s="0.05") as f:
        url_file = f.data_dir / "clickhouse" / "url"
        deadline = time.monotonic() + 30
        while not url_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        store = HttpStore(url_file.read_text().strip())
        seen: dict[str, float] = {}
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            now = time.time()
            for r in rows(store, "SELECT order_id FROM fills"):
                seen.setdefault(r["order_id"], now)
            time.sleep(0.05)
        child = next(c for c in psutil.Process(f.manager.pid).children()
                     if "backend.src.analytics" in " ".join(c.cmdline()))
        uss = child.memory_full_info().uss / 2**20
        lags = []
        for path in (f.data_dir / "journal").glob("*.jsonl"):
            for line in path.read_text().splitlines():
                e = json.loads(line)
                if e.get("type") == "fill" and e["order_id"] in seen:
                    lags.append((seen[e["order_id"]] - float(e["ts"])) * 1000)
        store.close()
        print(f"shipping lag (journal write -> row in the store), {len(lags)} fills over {seconds:.0f} s: "
              f"{stats(lags)} (polled every 50 ms)")
        print(f"analytics child (shipper + embedded store) memory: {uss:.0f} MB USS")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_analytics", description=__doc__.splitlines()[0])
    ap.add_argument("--fills", type=int, default=1_000_000)
    ap.add_argument("--candles", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--lag-seconds", type=float, default=60.0, help="0: skip the shipping-lag part")
    ap.add_argument("--lag-only", action="store_true", help="skip the query part")
    args = ap.parse_args(argv)
    if not args.lag_only:
        p95 = bench_queries(args)
        print(f"target: p95 of the dashboard's queries < 100 ms embedded — {'met' if p95 < 100 else 'NOT met'}")
    if args.lag_seconds > 0:
        bench_lag(args.lag_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
