"""Multi-timeframe features per new candle: ``python -m backend.scripts.bench_mtf [--symbols 15] [--candles 200]
[--timeframe 1h]``.

What an engine computes when a candle closes: the base technical features plus the three higher timeframes'
bars resampled from its candle window and their features, for the rows the model reads (the TFT's encoder:
``tail_features.build_tail`` over the ensemble's window — 1000 5m candles, or 2800 hourly ones). ``--symbols``
seeded synthetic pairs, ``--candles`` new candles each; prints min / median / p95 milliseconds per symbol
update, and per round of every symbol on one core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from backend.src.market.candles import SyntheticSource
from backend.src.models.tail_features import Window, build_tail
from backend.src.trading.strategies.ensemble import ENCODER, HOURLY_WINDOW, WINDOW


def q(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_mtf", description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=15)
    ap.add_argument("--candles", type=int, default=200)
    ap.add_argument("--timeframe", choices=["5m", "1h"], default="5m")
    args = ap.parse_args(argv)
    now = 1_700_000_000
    step_s, size = (300, WINDOW) if args.timeframe == "5m" else (3600, HOURLY_WINDOW)
    series = []
    for i in range(args.symbols):
        src = SyntheticSource(f"SYM{i}USDT", seed=i, interval_s=step_s, timeframe=args.timeframe,
                              annual_volatility=0.8, price=100.0 + i, now=now)
        candles = src.warmup(size + args.candles)
        window = Window(size)
        window.extend(candles[:size])
        series.append((window, candles[size:]))
    per_symbol: list[float] = []
    per_round: list[float] = []
    for k in range(args.candles):
        t_round = time.perf_counter()
        for window, new in series:
            t0 = time.perf_counter()
            window.append(new[k])
            feats = build_tail(window.frame(), ENCODER)
            per_symbol.append((time.perf_counter() - t0) * 1000)
            assert feats.iloc[-1].notna().all()  # noqa: S101 - a full window has every feature
        per_round.append((time.perf_counter() - t_round) * 1000)
    ncols = build_tail(series[0][0].frame(), 1).shape[1]
    print(f"{args.symbols} symbols x {args.candles} new {args.timeframe} candles, window {size}, {ncols} features "
          f"(the base and the three timeframes above it), the last {ENCODER} rows, one core")
    for name, xs in (("per symbol update", per_symbol), (f"per round of {args.symbols} symbols", per_round)):
        print(f"{name}: min {min(xs):.2f} / median {statistics.median(xs):.2f} / p95 {q(xs, 0.95):.2f} ms "
              f"(n={len(xs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
