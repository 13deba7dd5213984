"""Strategy plugins per candle and the check per plugin: ``python -m backend.scripts.bench_plugins [--candles 2000]``.

For each example plugin (the event-driven breakout, the vectorized z-score) and a built-in for scale: the time
an engine spends deciding one closed candle (the vectorized form runs ``populate`` over its window each
candle), the time the backtester spends per candle when it runs the whole file at once (``precompute``), and
the look-ahead and warm-up check an engine runs before trading a plugin (on its 600-candle window). Synthetic
hourly candles; prints min / median / p95.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from backend.src.core.config import StrategyConfig
from backend.src.market.candles import SyntheticSource
from backend.src.trading.check import check_strategy
from backend.src.trading.factory import build_strategy, prepare
from backend.src.trading.strategies.base import Strategy

STRATEGIES = {"breakout (plugin, event-driven)": StrategyConfig(name="channel_breakout", params={"lookback": 48}),
              "z-score (plugin, vectorized)": StrategyConfig(name="zscore_reversion", params={"lookback": 72}),
              "sma_crossover (built in)": StrategyConfig(name="sma_crossover", params={"fast": 24, "slow": 96})}


def q(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


def line(name: str, xs: list[float], unit: str) -> str:
    return (f"  {name}: min {min(xs):.3f} / median {statistics.median(xs):.3f} / p95 {q(xs, 0.95):.3f} {unit} "
            f"(n={len(xs)})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_plugins", description=__doc__.splitlines()[0])
    ap.add_argument("--candles", type=int, default=2000)
    ap.add_argument("--checks", type=int, default=5, help="check runs per strategy")
    args = ap.parse_args(argv)
    src = SyntheticSource("BENCHUSDT", seed=3, interval_s=3600, timeframe="1h", annual_volatility=0.8, price=100.0,
                          now=1_700_000_000 + (args.candles + 700) * 3600)
    candles = src.warmup(args.candles + 700)
    print(f"{args.candles} synthetic 1h candles per strategy, one core")
    for name, raw in STRATEGIES.items():
        try:
            cfg = prepare(raw, Path.cwd())
        except ValueError as exc:  # the example package is not installed
            print(f"{name}: not available ({exc})", file=sys.stderr)
            continue

        def make(cfg: StrategyConfig = cfg) -> Strategy:
            return build_strategy(cfg)

        s = make()
        warm = candles[:s.warmup_candles]
        s.warmup(warm)
        live = []
        for c in candles[len(warm):len(warm) + args.candles]:
            t0 = time.perf_counter()
            s.on_candle(c)
            live.append((time.perf_counter() - t0) * 1000)
        bulk = []
        for _ in range(3):
            b = make()
            run = candles[:len(warm) + args.candles]
            t0 = time.perf_counter()
            b.precompute(run)
            for c in run:
                b.on_candle(c)
            bulk.append((time.perf_counter() - t0) * 1e6 / len(run))
        checks = []
        for _ in range(args.checks):
            t0 = time.perf_counter()
            rep = check_strategy(make, candles[:600], cuts=6, restarts=4)
            checks.append(time.perf_counter() - t0)
        print(f"{name} (warm-up {s.warmup_candles}; check {'OK' if rep.ok else 'FOUND'})")
        print(line("engine, per candle", live, "ms"))
        print(line("backtester, per candle (whole run at once)", bulk, "µs"))
        print(line("the check before trading (600 candles)", checks, "s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
