"""Collect the latest candles for the nightly retrain, incrementally.

``python -m backend.ml.research.data_collector --days 1 --symbols BTCUSDT,ETHUSDT --source live:binance``
appends what is missing (at most ``--days`` before now) to ``<data dir>/ohlcv/<SYMBOL>-<tf>.parquet``
through ccxt. ``--source replay:DIR`` plays an exchange from candle files instead: each run
appends the next ``--days`` of the symbol's file after what is stored (the first run seeds
``--seed-days``), so a replayed "night" advances the data exactly like a live one.
Writes are atomic (temp file + rename); a failed fetch leaves the stored file as it was
and exits 3.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from backend.src.core.config import parse_source, parse_symbols
from backend.src.core.errors import EXIT_USAGE, TransientError, UsageError
from backend.src.core.settings import Settings, cli_path, cli_settings
from backend.src.market.candles import load_candles, resolve_replay_file
from backend.src.market.download import download, read_rows, write_rows
from backend.src.market.live_source import timeframe_ms

EXIT_FETCH = 3
DAY_MS = 86_400_000


def collect_replay(source_dir: Path, symbol: str, out: Path, days: float, seed_days: float) -> dict[str, int]:
    candles, _ = load_candles(resolve_replay_file(source_dir, symbol))
    rows = read_rows(out)
    last = int(rows[-1][0]) if rows else None
    horizon = (last if last is not None else candles[0].ts - 1) + int((days if rows else seed_days) * DAY_MS)
    new = [[c.ts, c.open, c.high, c.low, c.close, c.volume] for c in candles
           if (last is None or c.ts > last) and c.ts <= horizon]
    if new or not out.exists():
        write_rows(out, rows + new)
    return {"fetched": len(new), "stored": len(rows) + len(new)}


def collect_live(exchange: str, symbol: str, timeframe: str, out: Path, days: float, settings: Settings,
                 now_ms: int) -> dict[str, int]:
    from backend.src.market.exchange import call, make_exchange, resolve_symbol  # noqa: PLC0415 - ccxt is slow to import

    ex = make_exchange(exchange, base_url=settings.exchange_base_url, timeout_s=settings.exchange_timeout_s)
    call(ex.load_markets)
    tf = timeframe_ms(timeframe)
    end = now_ms - now_ms % tf  # only closed candles
    return download(ex, resolve_symbol(ex, symbol), symbol, timeframe, end - int(days * DAY_MS), end, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="data_collector", description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--symbols", required=True)
    ap.add_argument("--source", required=True, help="live:EXCHANGE | replay:DIR")
    ap.add_argument("--timeframe", default="5m")
    ap.add_argument("--seed-days", type=float, default=15.0, help="replay: days stored by the first run")
    ap.add_argument("--data-dir", type=cli_path, default=None)
    args = ap.parse_args(argv)
    try:
        if args.days <= 0:
            raise UsageError("--days: must be positive")
        settings = cli_settings(args.data_dir)
        symbols = parse_symbols(args.symbols)
        source = parse_source(args.source)
        if source.kind not in ("live", "replay"):
            raise UsageError("--source: live:EXCHANGE or replay:DIR")
        out_dir = settings.data_dir / "ohlcv"
        out_dir.mkdir(parents=True, exist_ok=True)
        for sym in symbols:
            out = out_dir / f"{sym}-{args.timeframe}.parquet"
            if source.kind == "replay":
                got = collect_replay(Path(str(source.path)), sym, out, args.days, args.seed_days)
            else:
                got = collect_live(str(source.exchange), sym, args.timeframe, out, args.days, settings,
                                   int(time.time() * 1000))
            print(f"{sym}: +{got['fetched']} candles, {got['stored']} stored in {out}")
    except UsageError as exc:
        print(f"data_collector: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TransientError as exc:
        print(f"data_collector: error: fetch failed, nothing changed: {exc}", file=sys.stderr)
        return EXIT_FETCH
    return 0


if __name__ == "__main__":
    sys.exit(main())
