"""Nightly retrain benchmark: ``python -m backend.scripts.bench_retrain --symbols 3 15 [--timeframe 1h]``.

Runs the real ``nightly_retrain.sh`` (default settings: 50 trials over the last 30 days of
data, or all there is; hourly: over the last 365 days) on a replayed exchange built from the
shared files (5m: the seven pairs, reused under other names past the seventh symbol; 1h: the ten
hourly pairs of ``ohlcv-1h``, seeded with two years as a collector that has run that long would
have), with an embedded Redis, and prints the wall time of a full cycle per symbol count:
min / median / p95 over ``--repeats``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess  # noqa: S404 - the benchmark runs the real script
import sys
import tempfile
import time
from pathlib import Path

from backend.ml.research.data_collector import collect_replay
from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.settings import REPO_ROOT, cli_path

SCRIPT = REPO_ROOT / "backend" / "scripts" / "nightly_retrain.sh"
SEED_DAYS = 730


def night(n: int, ohlcv: Path, tmp: Path, url: str, timeframe: str, run: int) -> tuple[float, str]:
    files = sorted(ohlcv.glob("*_BTC-5m.csv" if timeframe == "5m" else f"*-{timeframe}.csv"))
    if not files:
        raise SystemExit(f"--ohlcv-dir: no {timeframe} candle files in {ohlcv}")
    quote = files[0].stem.split("-")[0].split("_")[1]
    replay, data = tmp / f"exchange-{n}-{run}", tmp / f"data-{n}-{run}"
    replay.mkdir()
    symbols = []
    for i in range(n):
        (replay / f"S{i:02d}_{quote}-{timeframe}.csv").symlink_to(files[i % len(files)])
        symbols.append(f"S{i:02d}{quote}")
    env = {**os.environ, "LEVIBOT_DATA_DIR": str(data), "LEVIBOT_REDIS_URL": url,
           "LEVIBOT_NAMESPACE": f"benchretrain{n}r{run}:", "LEVIBOT_RETRAIN_SYMBOLS": "[" + ",".join(
               f'"{s}"' for s in symbols) + "]", "LEVIBOT_RETRAIN_SOURCE": f"replay:{replay}",
           "LEVIBOT_RETRAIN_TIMEFRAME": timeframe, "LEVIBOT_PYTHON": sys.executable}
    if timeframe != "5m":  # a year to tune on, a collector that has been running for two
        env["LEVIBOT_RETRAIN_DAYS"] = "365"
        (data / "ohlcv").mkdir(parents=True)
        for sym in symbols:
            collect_replay(replay, sym, data / "ohlcv" / f"{sym}-{timeframe}.parquet", 1, SEED_DAYS)
    t0 = time.monotonic()
    out = subprocess.run([str(SCRIPT)], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                         check=False)
    took = time.monotonic() - t0
    if out.returncode != 0:
        raise SystemExit(f"retrain of {n} symbols failed:\n{out.stdout}\n{out.stderr}")
    return took, out.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, nargs="+", default=[3, 15])
    ap.add_argument("--timeframe", choices=["5m", "1h"], default="5m")
    ap.add_argument("--ohlcv-dir", type=cli_path, default=None,
                    help="default: ../shared/data/ohlcv (5m) or ../shared/data/ohlcv-1h (1h)")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    ohlcv = args.ohlcv_dir or REPO_ROOT.parent / "shared" / "data" / ("ohlcv" if args.timeframe == "5m" else "ohlcv-1h")
    with tempfile.TemporaryDirectory(prefix="levibot-bench-retrain-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        try:
            for n in args.symbols:
                runs = [night(n, ohlcv, Path(tmp), server.url, args.timeframe, i) for i in range(args.repeats)]
                walls = sorted(t for t, _ in runs)
                p95 = walls[min(len(walls) - 1, int(0.95 * len(walls)))]
                print(f"full retrain cycle, {n} {args.timeframe} symbols: min {walls[0]:.0f} / median "
                      f"{statistics.median(walls):.0f} / p95 {p95:.0f} s (n={len(walls)}) — {runs[-1][1]}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
