"""Multi-timeframe features per new candle: ``python -m backend.scripts.bench_mtf [--symbols 15] [--candles 200]``.

What an engine computes when a 5m candle closes: the 5m technical features plus the 15m, 1h and 4h
bars resampled from its candle window and their features (``feature_pipeline.build`` over the
ensemble's ``WINDOW``). ``--symbols`` seeded synthetic pairs, ``--candles`` new candles each; prints
min / median / p95 milliseconds per symbol update, and per round of every symbol on one core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import deque

import pandas as pd

from backend.src.core.types import Candle
from backend.src.market.candles import SyntheticSource
from backend.src.models.feature_pipeline import build
from backend.src.trading.strategies.ensemble import WINDOW

STEP_S = 300


def q(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


def frame(window: deque[Candle]) -> pd.DataFrame:
    return pd.DataFrame([(c.ts, c.open, c.high, c.low, c.close, c.volume) for c in window],
                        columns=["ts", "open", "high", "low", "close", "volume"]).set_index("ts")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_mtf", description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=15)
    ap.add_argument("--candles", type=int, default=200)
    args = ap.parse_args(argv)
    now = 1_700_000_000
    series = []
    for i in range(args.symbols):
        src = SyntheticSource(f"SYM{i}USDT", seed=i, interval_s=STEP_S, timeframe="5m", annual_volatility=0.8,
                              price=100.0 + i, now=now)
        candles = src.warmup(WINDOW + args.candles)
        series.append((deque(candles[:WINDOW], maxlen=WINDOW), candles[WINDOW:]))
    per_symbol: list[float] = []
    per_round: list[float] = []
    for k in range(args.candles):
        t_round = time.perf_counter()
        for window, new in series:
            t0 = time.perf_counter()
            window.append(new[k])
            feats = build(frame(window))
            per_symbol.append((time.perf_counter() - t0) * 1000)
            assert feats.iloc[-1].notna().all()  # noqa: S101 - a full window has every feature
        per_round.append((time.perf_counter() - t_round) * 1000)
    ncols = build(frame(series[0][0])).shape[1]
    print(f"{args.symbols} symbols x {args.candles} new 5m candles, window {WINDOW}, {ncols} features "
          "(5m + 15m + 1h + 4h), one core")
    for name, xs in (("per symbol update", per_symbol), (f"per round of {args.symbols} symbols", per_round)):
        print(f"{name}: min {min(xs):.2f} / median {statistics.median(xs):.2f} / p95 {q(xs, 0.95):.2f} ms "
              f"(n={len(xs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
