"""Replay throughput: ``python -m backend.scripts.bench_replay --engines 15``.

Runs the real manager with replay engines at unlimited speed on one OHLCV file (default:
the largest CSV in ../shared/data/ohlcv) and measures candles/s through the full engine
loop — strategy, paper fills fsynced to the journal, state heartbeats to Redis — first for
one engine alone, then for N engines at once. Per-engine time runs from the engine's start
to its last candle (both stamped by the engine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.redis_url import connect
from backend.src.core.settings import REPO_ROOT, cli_path
from backend.src.market.candles import load_candles

NS = "benchreplay:"


def default_file() -> Path | None:
    for parent in REPO_ROOT.resolve().parents:
        d = parent / "shared" / "data" / "ohlcv"
        if d.is_dir():
            files = sorted(d.glob("*.csv"), key=lambda p: p.stat().st_size)
            return files[-1] if files else None
    return None


def run(n: int, path: Path, url: str, tmp: str) -> list[tuple[int, float]]:
    r = connect(url)
    symbols = [f"R{n:02d}X{i:02d}" for i in range(n)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVIBOT_")}
    env.update({"LEVIBOT_REDIS_URL": url, "LEVIBOT_NAMESPACE": NS, "LEVIBOT_DATA_DIR": f"{tmp}/data{n}",
                "LEVIBOT_REPLAY_SPEED": "1e12", "LEVIBOT_API_ENABLED": "false"})
    cfg = Path(tmp) / "engines.yaml"
    cfg.write_text("defaults:\n  strategy: {name: sma_crossover, fast: 5, slow: 20}\n")
    mgr = subprocess.Popen([sys.executable, "-m", "backend.src.engine_manager", "--symbols", ",".join(symbols),
                            "--source", f"replay:{path}", "--config", str(cfg)],
                           env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while True:
            states = [r.hgetall(f"{NS}engine:{s}") for s in symbols]
            if all(st.get("exhausted") == "1" for st in states):
                break
            if time.monotonic() > deadline or mgr.poll() is not None:
                raise SystemExit("bench_replay: replays did not finish")
            time.sleep(0.05)
        return [(int(st["candles"]), float(st["last_candle_at"]) - float(st["started_at"])) for st in states]
    finally:
        mgr.terminate()
        mgr.wait(30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", type=int, default=15)
    ap.add_argument("--file", type=cli_path, default=None)
    args = ap.parse_args(argv)
    path = args.file or default_file()
    if path is None or not path.is_file() or args.engines < 1:
        print("bench_replay: error: --file: no OHLCV file (or --engines < 1)", file=sys.stderr)
        return 2
    rows = load_candles(path)[1].rows
    print(f"file {path.name}: {rows} candles")
    with tempfile.TemporaryDirectory(prefix="levibot-bench-replay-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        try:
            for n in sorted({1, args.engines}):
                t0 = time.monotonic()
                res = run(n, path, server.url, tmp)
                wall = time.monotonic() - t0
                rates = [c / t for c, t in res]
                total = sum(c for c, _ in res)
                busy = max(t for _, t in res)
                print(f"{n:>2} engine(s): per engine min {min(rates):,.0f} / median {statistics.median(rates):,.0f} / "
                      f"max {max(rates):,.0f} candles/s; all together {total / busy:,.0f} candles/s "
                      f"({total} candles in {busy:.2f}s; {wall:.1f}s with start/stop)")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
