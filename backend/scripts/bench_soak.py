"""Soak benchmark: ``python -m backend.scripts.bench_soak --engines 15 --minutes 30``.

Runs the real manager CLI on embedded defaults (its own password-protected Redis, AOF on)
with N engines on fast synthetic candles for a while, and samples the data dir every
``--sample-s`` seconds: its total size, the Redis AOF, the journals and the logs. Prints the
growth per hour (min / median / p95 over the samples, and over the whole run), Redis's
memory and how many AOF rewrites it did: the data dir must stay bounded while the engines
write heartbeats all day.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backend.src.core.redis_url import connect
from backend.src.core.settings import REPO_ROOT


def size_mb(path: Path) -> float:
    if not path.exists():
        return 0.0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * len(xs)) - 1))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", type=int, default=15)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--sample-s", type=float, default=60.0)
    ap.add_argument("--candle-s", type=float, default=0.05, help="wall seconds per synthetic candle")
    args = ap.parse_args(argv)
    if args.engines < 1 or args.minutes <= 0 or args.sample_s <= 0:
        print("bench: error: --engines, --minutes and --sample-s must be positive", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="levibot-bench-soak-") as tmp:
        data = Path(tmp) / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEVIBOT_")}
        env.update(LEVIBOT_DATA_DIR=str(data), LEVIBOT_API_ENABLED="0", LEVIBOT_WORKERS="0",
                   LEVIBOT_SYNTHETIC_INTERVAL_S=str(args.candle_s))
        syms = ",".join(f"SOAK{i:02d}USDT" for i in range(args.engines))
        proc = subprocess.Popen([sys.executable, "-m", "backend.src.engine_manager", "--symbols", syms],  # noqa: S603
                                env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not (data / "redis" / "url").exists():
                if time.monotonic() > deadline or proc.poll() is not None:
                    print("bench: error: the manager did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            r = connect((data / "redis" / "url").read_text().strip(), timeout=5.0)
            time.sleep(10)  # engines up
            t0, s0 = time.monotonic(), size_mb(data)
            samples: list[tuple[float, float, float, float, float]] = [(t0, s0, size_mb(data / "redis"),
                                                                       size_mb(data / "journal"),
                                                                       size_mb(data / "logs"))]
            end = t0 + args.minutes * 60
            while time.monotonic() < end:
                time.sleep(min(args.sample_s, max(0.0, end - time.monotonic())))
                samples.append((time.monotonic(), size_mb(data), size_mb(data / "redis"),
                                size_mb(data / "journal"), size_mb(data / "logs")))
            info = r.info("persistence")
            mem = float(r.info("memory")["used_memory"]) / 2**20
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    rates = [(b[1] - a[1]) / (b[0] - a[0]) * 3600 for a, b in zip(samples, samples[1:], strict=False)]
    hours = (samples[-1][0] - samples[0][0]) / 3600
    first, last = samples[0], samples[-1]
    print(f"soak: {args.engines} engines, one candle per {args.candle_s}s each, {hours * 60:.1f} min")
    print(f"data dir growth per hour over {len(rates)} samples: min={min(rates):.1f}MB "
          f"median={statistics.median(rates):.1f}MB p95={percentile(rates, 0.95):.1f}MB; "
          f"whole run {(last[1] - first[1]) / hours:.1f}MB/h")
    print(f"sizes at the end: data dir {last[1]:.1f}MB (redis {last[2]:.1f}MB, journals {last[3]:.1f}MB, "
          f"logs {last[4]:.1f}MB); redis used_memory {mem:.1f}MB, "
          f"aof_current_size {float(info.get('aof_current_size', 0)) / 2**20:.1f}MB, aof_base_size (at the last "
          f"rewrite) {float(info.get('aof_base_size', 0)) / 2**20:.1f}MB, last rewrite "
          f"{info.get('aof_last_bgrewrite_status', 'n/a')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
