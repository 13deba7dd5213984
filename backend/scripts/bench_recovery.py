"""Recovery benchmark: ``python -m backend.scripts.bench_recovery --engines 15 --kills 30``.

Starts the real manager CLI with N engines (synthetic feed) against a Redis started by the
project's launcher, ``kill -9``s random engines one at a time, and measures recovery as
kill -> first heartbeat written by the replacement process (timestamps from the same
host clock), and kill -> ``engine_registry.json`` says ``running`` with the new pid (what an
outside reader of the registry file sees). Then kills all engines at once and measures
until every one is back.
Finally reports the memory (USS) of manager + forkserver + engines.

Each kill is an isolated crash: an engine is not killed again before it has run for the
(benchmark-shortened) stable window, so every restart takes the immediate first-restart
path, as a single real crash would. Repeated crashes back off on purpose and are not a
recovery-speed figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.redis_url import connect
from backend.src.core.settings import REPO_ROOT

NS = "bench:"


def heartbeat(r, symbol: str) -> tuple[int, float] | None:  # type: ignore[no-untyped-def]
    v = r.get(f"{NS}hb:{symbol}")
    if not v:
        return None
    pid, _, ts = str(v).split(":")
    return int(pid), float(ts)


def wait_new(r, symbol: str, old_pid: int, timeout: float = 30.0) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hb = heartbeat(r, symbol)
        if hb and hb[0] != old_pid:
            return hb
        time.sleep(0.002)
    raise SystemExit(f"bench: {symbol} did not come back within {timeout}s")


def wait_registry(path: Path, symbol: str, pid: int, timeout: float = 30.0) -> float:
    """Wall time at which the registry file first shows ``symbol`` running as ``pid``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            entry = json.loads(path.read_text(encoding="utf-8")).get(symbol) or {}
        except (OSError, ValueError):
            entry = {}
        if entry.get("pid") == pid and entry.get("status") == "running":
            return time.time()
        time.sleep(0.002)
    raise SystemExit(f"bench: the registry file did not show {symbol} running as pid {pid} within {timeout}s")


def stats(label: str, xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, max(0, int(round(0.95 * len(xs))) - 1))]
    return (f"{label}: n={len(xs)} min={xs[0] * 1000:.1f}ms median={statistics.median(xs) * 1000:.1f}ms "
            f"p95={p95 * 1000:.1f}ms max={xs[-1] * 1000:.1f}ms")


def footprint(procs: list[psutil.Process]) -> tuple[float, float]:
    """(USS, PSS) in MB over the processes still alive."""
    uss = pss = 0
    for p in procs:
        try:
            info = p.memory_full_info()
        except psutil.Error:
            continue
        uss, pss = uss + info.uss, pss + info.pss
    return uss / 2**20, pss / 2**20


def uss_mb(procs: list[psutil.Process]) -> float:
    return footprint(procs)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", type=int, default=15)
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--gap", type=float, default=0.3, help="seconds between kills")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.engines < 1 or args.kills < 1:
        print("bench: error: --engines and --kills must be >= 1", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    symbols = [f"B{i:02d}USDT" for i in range(args.engines)]
    with tempfile.TemporaryDirectory(prefix="levibot-bench-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        r = connect(server.url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEVIBOT_")}
        env.update({"LEVIBOT_REDIS_URL": server.url, "LEVIBOT_NAMESPACE": NS, "LEVIBOT_DATA_DIR": f"{tmp}/data",
                    "LEVIBOT_STABLE_AFTER_S": "1.0"})
        mgr = subprocess.Popen([sys.executable, "-m", "backend.src.engine_manager", "--symbols", ",".join(symbols)],
                               env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            t0 = time.monotonic()
            pids = {s: wait_new(r, s, -1, 60)[0] for s in symbols}
            print(f"started {args.engines} engines in {time.monotonic() - t0:.2f}s")
            last_kill: dict[str, float] = {}
            singles: list[float] = []
            registry: list[float] = []
            registry_file = Path(tmp) / "data" / "engine_registry.json"
            for _ in range(args.kills):
                ready = [s for s in symbols if time.monotonic() - last_kill.get(s, -99) > 2.5] or symbols
                sym = rng.choice(ready)
                killed_at = time.time()
                os.kill(pids[sym], signal.SIGKILL)
                last_kill[sym] = time.monotonic()
                pid, ts = wait_new(r, sym, pids[sym])
                singles.append(ts - killed_at)
                registry.append(wait_registry(registry_file, sym, pid) - killed_at)
                pids[sym] = pid
                time.sleep(args.gap)
            print(stats("single kill -> fresh heartbeat", singles))
            print(stats("single kill -> registry file says running (new pid)", registry))

            time.sleep(2.0)  # let every engine pass its stable window
            killed_at = time.time()
            for s in symbols:
                os.kill(pids[s], signal.SIGKILL)
            backs = []
            for s in symbols:
                pid, ts = wait_new(r, s, pids[s])
                backs.append(ts - killed_at)
                pids[s] = pid
            print(stats(f"all {args.engines} killed at once -> each back", backs))
            print(f"all {args.engines} back within {max(backs):.3f}s")

            time.sleep(2.0)
            tree = psutil.Process(mgr.pid).children(recursive=True)
            engines = [p for p in tree if any(f"engine-{s}" in " ".join(p.cmdline()) for s in symbols)]
            others = [p for p in tree if p not in engines]
            total = uss_mb([psutil.Process(mgr.pid), *tree])
            print(f"memory USS: total {total:.0f} MB (manager {uss_mb([psutil.Process(mgr.pid)]):.0f} MB, "
                  f"forkserver {uss_mb(others):.0f} MB, {len(engines)} engines {uss_mb(engines):.0f} MB, "
                  f"{uss_mb(engines) / max(1, len(engines)):.1f} MB each); redis-server "
                  f"{uss_mb([psutil.Process(server.proc.pid)]) if server.proc else 0:.0f} MB")
        finally:
            mgr.terminate()
            mgr.wait(30)
            r.close()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
