"""Risk benchmark: ``python -m backend.scripts.bench_risk --procs 15 --calls 2000 --stops 5``.

1. Reservation throughput: P processes race reserve/release on the Lua portfolio limits
   (the real script, real Redis from the project launcher); prints calls/s and per-call
   latency min/median/p95.
2. Global stop: runs the sprint plan's scenario (15 real engines driven into a -4 % day)
   K times; prints trigger -> all engines flat and halted, min/median/p95.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from backend.risk import global_stop_drill
from backend.risk.limits import PortfolioLimits
from backend.src.core.keys import Keys
from backend.src.core.lease import Lease
from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.redis_url import connect


def racer(url: str, idx: int, calls: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    r, keys = connect(url), Keys("benchrisk:")
    sym = f"R{idx:02d}USDT"
    lease = Lease(r, keys, sym, "bench", os.getpid(), ttl_s=60)
    lease.acquire()
    limits = PortfolioLimits(r, keys)
    lat = []
    for i in range(calls):
        t0 = time.perf_counter()
        d = limits.reserve(sym, lease.token, group=("g1", "g2", "g3")[idx % 3], exposure_usd=100, max_exposure_usd=1000,
                           max_total=10, max_group=4)
        lat.append(time.perf_counter() - t0)
        if d.allowed and i % 2:
            limits.release(sym, lease.token)
    out.put(lat)


def q(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=15)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--stops", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="levibot-bench-risk-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        try:
            ctx = mp.get_context("fork")
            out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
            procs = [ctx.Process(target=racer, args=(server.url, i, args.calls, out)) for i in range(args.procs)]
            t0 = time.perf_counter()
            for p in procs:
                p.start()
            lat = [x for _ in procs for x in out.get(timeout=600)]
            took = time.perf_counter() - t0
            for p in procs:
                p.join()
            print(f"reservations: {len(lat)} checks by {args.procs} racing processes in {took:.2f}s = "
                  f"{len(lat) / took:,.0f} checks/s; per call min {min(lat) * 1e3:.3f} ms, median "
                  f"{statistics.median(lat) * 1e3:.3f} ms, p95 {q(lat, 0.95) * 1e3:.3f} ms")
        finally:
            server.stop()
    halts = []
    for i in range(args.stops):
        ns = argparse.Namespace(daily_loss=-4.0, max_daily_loss=3.0, engines=15, restart_check=False)
        with tempfile.TemporaryDirectory(prefix="levibot-bench-gstop-") as tmp:
            code, took_s = global_stop_drill.run(ns, Path(tmp))
        if code != 0 or took_s is None:
            print(f"global stop run {i + 1} failed", file=sys.stderr)
            return 1
        halts.append(took_s)
    if halts:
        print(f"global stop, 15 engines, {len(halts)} runs: trigger -> all flat and halted min "
              f"{min(halts) * 1e3:.0f} ms, median {statistics.median(halts) * 1e3:.0f} ms, "
              f"p95 {q(halts, 0.95) * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
