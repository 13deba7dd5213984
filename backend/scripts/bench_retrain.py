"""Nightly retrain benchmark: ``python -m backend.scripts.bench_retrain --symbols 3 15``.

Runs the real ``nightly_retrain.sh`` (default settings: 50 trials over the last 30 days of
data, or all there is) on a replayed exchange built from the shared 5m files (reused under
other names past the seventh symbol), with an embedded Redis, and prints the wall time of a
full cycle per symbol count.
"""

from __future__ import annotations

import argparse
import os
import subprocess  # noqa: S404 - the benchmark runs the real script
import sys
import tempfile
import time
from pathlib import Path

from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.settings import REPO_ROOT, cli_path

SCRIPT = REPO_ROOT / "backend" / "scripts" / "nightly_retrain.sh"


def night(n: int, ohlcv: Path, tmp: Path, url: str) -> tuple[float, str]:
    files = sorted(ohlcv.glob("*_BTC-5m.csv"))
    replay = tmp / f"exchange-{n}"
    replay.mkdir()
    symbols = []
    for i in range(n):
        name = f"S{i:02d}_BTC-5m.csv"
        (replay / name).symlink_to(files[i % len(files)])
        symbols.append(f"S{i:02d}BTC")
    env = {**os.environ, "LEVIBOT_DATA_DIR": str(tmp / f"data-{n}"), "LEVIBOT_REDIS_URL": url,
           "LEVIBOT_NAMESPACE": f"benchretrain{n}:", "LEVIBOT_RETRAIN_SYMBOLS": "[" + ",".join(
               f'"{s}"' for s in symbols) + "]", "LEVIBOT_RETRAIN_SOURCE": f"replay:{replay}",
           "LEVIBOT_PYTHON": sys.executable}
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
    ap.add_argument("--ohlcv-dir", type=cli_path, default=REPO_ROOT.parent / "shared" / "data" / "ohlcv")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="levibot-bench-retrain-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        try:
            for n in args.symbols:
                took, last = night(n, args.ohlcv_dir, Path(tmp), server.url)
                print(f"full retrain cycle, {n} symbols: {took:.0f} s ({took / 60:.1f} min) — {last}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
