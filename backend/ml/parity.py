"""``python -m backend.ml.parity SYMBOL [--ohlcv FILE] [--json]``: why an engine's PnL differs from its backtest.

Replays the candles the engine traded (every session in its record: restarts and config changes
included) through the backtester with its published config, and splits the PnL gap by cause — decision
(and why), timing, price, fees, size, funding — in the quote currency and as a share of the gap
(``backend.ml.research.attribution``). Reads the data dir and Redis as the API does; with ``--ohlcv`` the
backtest trades that candle file over the same span (a candle the engine missed then shows as a cause).
Exit 2 and one line on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys

import redis

from backend.ml.research.attribution import summary
from backend.ml.research.parity import report
from backend.src.core.errors import EXIT_USAGE
from backend.src.core.redis_launcher import discover_url
from backend.src.core.redis_url import connect
from backend.src.core.settings import Settings, cli_path
from backend.src.market.candles import load_candles


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m backend.ml.parity", description=__doc__.splitlines()[0])
    ap.add_argument("symbol", help="e.g. BTCUSDT")
    ap.add_argument("--ohlcv", type=cli_path, default=None, help="the market's candle file for the span")
    ap.add_argument("--json", action="store_true", help="the whole result as JSON")
    args = ap.parse_args(argv)
    try:
        settings = Settings()
        market = load_candles(args.ohlcv)[0] if args.ohlcv is not None else None
        r = connect(discover_url(settings), timeout=5.0)
        out = report(args.symbol.upper(), settings, r, market)
    except (ValueError, OSError, redis.RedisError) as exc:
        print(f"parity: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(out, indent=1, default=float) if args.json else "\n".join(summary(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
