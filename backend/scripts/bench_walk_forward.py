"""Walk-forward benchmark: ``python -m backend.scripts.bench_walk_forward --ohlcv-dir DIR [--test-start 2023-01-01]``.

Runs the ensemble's whole walk-forward backtest (``backend.ml.research.backtest``: every validation fold of every
horizon, the selection, every test fold, the strategies and baselines traded, the report and charts) ``--repeats``
times and prints the wall time of the whole run and of one fold (a pooled model trained on every pair's past and
its month predicted): min / median / p95.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from backend.ml.research.backtest import main as backtest
from backend.src.core.settings import cli_path


def q(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_walk_forward", description=__doc__.splitlines()[0])
    ap.add_argument("--ohlcv-dir", type=cli_path, required=True)
    ap.add_argument("--test-start", default="2023-01-01")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-tft", action="store_true")
    ap.add_argument("--market", choices=["spot", "perpetual"], default="spot")
    ap.add_argument("--out", type=cli_path, default=None, help="keep the last run's report and charts here")
    args = ap.parse_args(argv)
    walls: list[float] = []
    folds: list[float] = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="levibot-bench-wf-") as scratch:
            tmp = str(args.out or scratch)
            t0 = time.perf_counter()
            argv_run = ["--ohlcv-dir", str(args.ohlcv_dir), "--test-start", args.test_start, "--out", tmp,
                        "--market", args.market]
            if backtest(argv_run + (["--no-tft"] if args.no_tft else [])) != 0:
                return 1
            walls.append(time.perf_counter() - t0)
            rep = json.loads((Path(tmp) / "report.json").read_text())
            folds += rep["fold_seconds"]
            pairs = sum(1 for k in rep if k.endswith(("-1h", "-5m")))
    print(f"walk-forward over {pairs} pairs, whole run: min {min(walls):.0f} / median {statistics.median(walls):.0f} / "
          f"p95 {q(walls, 0.95):.0f} s (n={len(walls)})")
    print(f"one fold (pooled fit + predict): min {min(folds):.1f} / median {statistics.median(folds):.1f} / "
          f"p95 {q(folds, 0.95):.1f} s (n={len(folds)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
