"""Backtester throughput: ``python -m backend.scripts.bench_backtest [--file F] [--repeat 7]``.

Candles per second through the shared trading code (``TradingSession``: strategy → sizer → trader →
in-memory journal), on one core, per strategy: the SMA baseline, the ensemble's decision rule over
precomputed probabilities (what the walk-forward and the tuner run), the LeviLang examples, and the
SMA and the long/short LeviLang example both ways on a perpetual (3x: funding, margin and liquidation
checks each candle). Each figure is min / median / p95 over ``--repeat`` full passes of the file.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from backend.risk.policy import load_policy
from backend.src.core.config import SymbolConfig
from backend.src.core.settings import REPO_ROOT, cli_path
from backend.src.market.candles import load_candles, symbol_of_file
from backend.src.trading.levilang import compile_text
from backend.src.trading.levilang.strategy import LeviStrategy
from backend.src.trading.simulator import simulate
from backend.src.trading.strategies.base import Strategy
from backend.src.trading.strategies.baselines import SmaCrossover
from backend.src.trading.strategies.decision import DecisionParams, Forecast
from backend.src.trading.strategies.ensemble import PrecomputedEnsemble

SHARED = REPO_ROOT.parent / "shared" / "data" / "ohlcv" / "ETH_BTC-5m.csv"


def q(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_backtest", description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=cli_path, default=SHARED, help="a candle file (default: the shared ETH/BTC 5m)")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    candles, loaded = load_candles(args.file)
    symbol = symbol_of_file(args.file)
    cfg = SymbolConfig(size_quote=1.0)
    perp = SymbolConfig(size_quote=1.0, market="perpetual", leverage=3, funding_rate=0.0001, liquidation_buffer_atr=0)
    policy = load_policy()
    probs = {c.ts: (Forecast(0.5 + 0.2 * math.sin(i / 40), 0.004 * math.sin(i / 40), 0.01, 0.6), 0.4)
             for i, c in enumerate(candles)}
    makers: dict[str, tuple[Callable[[], Strategy], SymbolConfig]] = {
        "sma_crossover 10/30": (lambda: SmaCrossover(10, 30), cfg),
        "ensemble decision rule (precomputed)": (lambda: PrecomputedEnsemble(probs, DecisionParams(
            0.6, min_hold=6, edge=1.0)), cfg),
        "ensemble decision rule, vol-targeted and Kelly-capped": (lambda: PrecomputedEnsemble(probs, DecisionParams(
            0.6, min_hold=6, edge=1.0, vol_target=0.3, kelly_cap=0.25)), cfg),
    }
    tf = f"timeframe: {loaded.timeframe_ms // 60_000}m"
    for f in sorted((REPO_ROOT / "backend" / "strategies").glob("*.levi.yaml")):
        text = re.sub(r"timeframe: \w+", tf, f.read_text())  # written for this file's bars
        shorts = compile_text(text, str(f)).entry_short is not None
        makers[f"levilang {f.stem.removesuffix('.levi')}{' (perpetual 3x)' if shorts else ''}"] = \
            (lambda t=text, f=f: LeviStrategy(compile_text(t, str(f))), perp if shorts else cfg)  # type: ignore[misc]
    makers["sma_crossover 10/30 both ways (perpetual 3x)"] = (lambda: SmaCrossover(10, 30, allow_short=True), perp)
    print(f"{len(candles)} candles of {Path(args.file).name}, {args.repeat} passes each, one core")
    for name, (make, config) in makers.items():
        rates, fills = [], 0
        for _ in range(args.repeat):
            strategy = make()
            t0 = time.perf_counter()
            res = simulate(symbol, config, strategy, candles, policy)
            rates.append(len(candles) / (time.perf_counter() - t0))
            fills = len(res.fills)
        print(f"{name}: min {min(rates):,.0f} / median {statistics.median(rates):,.0f} / p95 {q(rates, 0.95):,.0f} "
              f"candles/s ({fills} fills)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
