"""Download OHLCV history through ccxt into Parquet, resumable and incremental.

``python -m backend.src.market.download --exchange binance --symbols BTCUSDT,ETHUSDT --timeframe 5m
--start 2023-01-01 --end 2024-10-01`` writes ``backend/data/ohlcv/<SYMBOL>-<tf>.parquet``.
Re-running fetches only what is missing (before the first or after the last stored candle);
progress is saved every few thousand candles (temp file + rename), so an interrupted run
resumes where it stopped. The replay source and the ML pipeline read these files.

``--market perpetual``: the symbols' USD-margined perpetuals (``BTCUSDT`` -> ``BTC/USDT:USDT``) into
``<data dir>/ohlcv-perpetual/``, and beside each candle file the exchange's funding history as
``<SYMBOL>-funding.csv`` (``timestamp,rate``: what a perpetual symbol's ``funding_file`` reads).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

from backend.src.core.cli import OneLineParser
from backend.src.core.config import parse_symbols
from backend.src.core.errors import EXIT_OK, EXIT_USAGE, TransientError, UsageError
from backend.src.core.progress import Progress
from backend.src.core.settings import Settings, cli_path
from backend.src.market.candles import load_candles
from backend.src.market.live_source import timeframe_ms

COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
SAVE_EVERY_PAGES = 10


def parse_day(value: str, name: str) -> int:
    try:
        day = dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise UsageError(f"{name}: expected YYYY-MM-DD, got {value!r}") from None
    return int(day.timestamp() * 1000)


def read_rows(path: Path) -> list[list[float]]:
    if not path.exists():
        return []
    candles, _ = load_candles(path)
    return [[c.ts, c.open, c.high, c.low, c.close, c.volume] for c in candles]


def write_rows(path: Path, rows: list[list[float]]) -> None:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    rows = sorted({int(r[0]): r for r in rows}.values(), key=lambda r: r[0])
    table = pa.table({"timestamp": pa.array([int(r[0]) for r in rows], pa.int64()),
                      **{name: pa.array([float(r[i]) for r in rows], pa.float64())
                         for i, name in enumerate(COLUMNS[1:], start=1)}})
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def download(ex: Any, market: str, symbol: str, timeframe: str, start: int, end: int, out: Path) -> dict[str, int]:
    """Fill ``out`` with every candle in [start, end); returns counts."""
    from backend.src.market.exchange import fetch_candles  # noqa: PLC0415

    tf = timeframe_ms(timeframe)
    rows = read_rows(out)
    have = {int(r[0]) for r in rows}
    ranges = []
    if not rows:
        ranges.append((start, end))
    else:
        first, last = min(have), max(have)
        if start < first:
            ranges.append((start, first))
        if last + tf < end:
            ranges.append((last + tf, end))
    todo = sum((b - a) // tf for a, b in ranges)
    progress = Progress(todo, f"{symbol} {timeframe}", unit="candle")  # a bar on a terminal, a line per page in a pipe
    fetched = pages = 0
    for a, b in ranges:
        since = a
        while since < b:
            page = [r for r in fetch_candles(ex, market, timeframe, since=since, limit=1000) if a <= r[0] < b]
            if not page:
                break  # the exchange has nothing more in this range
            new = [r for r in page if int(r[0]) not in have]
            have.update(int(r[0]) for r in new)
            rows.extend(new)
            fetched += len(new)
            pages += 1
            upto = dt.datetime.fromtimestamp(int(page[-1][0]) / 1000, dt.UTC)
            progress.update(len(page), note=f"up to {upto:%Y-%m-%d %H:%M}")
            since = int(page[-1][0]) + tf
            if pages % SAVE_EVERY_PAGES == 0:
                write_rows(out, rows)  # a crash from here on resumes after this point
    progress.close()
    if fetched or not out.exists():
        write_rows(out, rows)
    return {"fetched": fetched, "stored": len(have)}


def download_funding(ex: Any, market: str, start: int, end: int, out: Path) -> int:
    """Append the funding rates in [start, end) that ``out`` (CSV ``timestamp,rate``) lacks; how many."""
    from backend.src.market.exchange import call  # noqa: PLC0415

    have: dict[int, str] = {}
    if out.exists():
        for line in out.read_text().splitlines()[1:]:
            ts, rate = line.split(",")
            have[int(ts)] = rate
    since = max(have) + 1 if have else start
    added = 0
    while since < end:
        page = call(ex.fetch_funding_rate_history, market, since, 1000)
        page = [r for r in page if since <= int(r["timestamp"]) < end and r.get("fundingRate") is not None]
        if not page:
            break
        for r in page:
            have[int(r["timestamp"])] = repr(float(r["fundingRate"]))
        added += len(page)
        since = int(page[-1]["timestamp"]) + 1
    tmp = out.with_suffix(".tmp")
    tmp.write_text("timestamp,rate\n" + "".join(f"{ts},{have[ts]}\n" for ts in sorted(have)))
    tmp.replace(out)
    return added


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="download_data", description=__doc__.splitlines()[0])
    p.add_argument("--exchange", required=True)
    p.add_argument("--symbols", required=True)
    p.add_argument("--timeframe", default="5m")
    p.add_argument("--start", required=True, help="YYYY-MM-DD (UTC)")
    p.add_argument("--end", default=None, help="YYYY-MM-DD (UTC, exclusive); default: now")
    p.add_argument("--market", choices=("spot", "perpetual"), default="spot",
                   help="perpetual: the USD-margined perpetuals, with their funding history")
    p.add_argument("--out", type=cli_path, default=None, help="default: <data dir>/ohlcv (perpetual: ohlcv-perpetual)")
    args = p.parse_args(argv)
    try:
        from backend.src.core.config import SourceSpec  # noqa: PLC0415
        from backend.src.market.resolve import resolve_live  # noqa: PLC0415

        settings = Settings()
        symbols = parse_symbols(args.symbols)
        if args.timeframe[-1:] not in "smhd" or not args.timeframe[:-1].isdigit():
            raise UsageError(f"--timeframe: expected e.g. 1m, 5m, 1h, got {args.timeframe!r}")
        start = parse_day(args.start, "--start")
        end = parse_day(args.end, "--end") if args.end else int(time.time() * 1000)
        if end <= start:
            raise UsageError("--end: must be after --start")
        if importlib.util.find_spec("pyarrow") is None:
            raise UsageError("the downloader writes Parquet and needs pyarrow, which this install lacks "
                             "(the runtime image): run it from the trainer image or a full install")
        perpetual = args.market == "perpetual"
        markets = resolve_live(SourceSpec("live", exchange=args.exchange.lower()), symbols, settings,
                               frozenset(symbols) if perpetual else frozenset())
        out_dir = args.out or settings.data_dir / ("ohlcv-perpetual" if perpetual else "ohlcv")
        out_dir.mkdir(parents=True, exist_ok=True)
        from backend.src.market.exchange import make_exchange  # noqa: PLC0415

        ex = make_exchange(args.exchange.lower(), base_url=settings.exchange_base_url,
                           timeout_s=settings.exchange_timeout_s)
        ex.load_markets()
        for sym in symbols:
            path = out_dir / f"{sym}-{args.timeframe}.parquet"
            counts = download(ex, str(markets[sym].market), sym, args.timeframe, start, end, path)
            _, report = load_candles(path)
            print(f"{sym}: {counts['fetched']} new, {report.rows} stored, {report.gaps} gap(s), "
                  f"{report.duplicates} duplicate(s) -> {path}")
            if perpetual:
                funding = out_dir / f"{sym}-funding.csv"
                added = download_funding(ex, str(markets[sym].market), start, end, funding)
                print(f"{sym}: {added} funding rate(s) -> {funding}")
    except (UsageError, TransientError) as exc:
        print(f"download_data: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
