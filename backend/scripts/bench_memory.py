"""Memory of a fleet trading a production model:
``python -m backend.scripts.bench_memory --ohlcv FILE --engines 15 [--backend onnx|torch]``.

Trains a small ensemble (LightGBM + the TFT) on the file, promotes it, starts the real manager CLI with
N engines trading it (``strategy: ensemble``, synthetic candles; no API, workers, analytics or bot), waits
until every engine has loaded the model and traded candles on it, then prints the USS (private memory) of
the manager, the forkserver and the engines, and the tree's PSS (what the preloaded libraries cost too:
USS leaves out pages the forkserver shares with its engines). ``--backend torch`` runs the TFT in
torch and LightGBM natively (``LEVIBOT_TFT_BACKEND=torch``, ``LEVIBOT_GBDT_BACKEND=native``: the forkserver
then preloads torch, pytorch-forecasting and LightGBM), as every engine did before the ONNX runtime.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis

from backend.scripts.bench_recovery import footprint
from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.redis_url import connect
from backend.src.core.settings import REPO_ROOT, cli_path
from backend.src.models.ensemble_predictor import EnsembleConfig, EnsemblePredictor, ModelSpec
from backend.src.models.feature_pipeline import build, label_up, load_ohlcv
from backend.src.models.registry import Registry

NS = "benchmem:"


def train(ohlcv: Path, models: Path) -> str:
    df = load_ohlcv(ohlcv)
    cfg = EnsembleConfig(models=[
        ModelSpec(name="lgbm", weight=0.5, params={"n_estimators": 100}),
        ModelSpec(name="tft", weight=0.5, features="price_history",
                  params={"hidden_size": 16, "epochs": 1, "max_train_samples": 2000})])
    n = int(len(df) * 0.75)
    model = EnsemblePredictor(cfg).fit(build(df).iloc[:n], label_up(df, 12).iloc[:n])
    reg = Registry(models)
    version = reg.save(model.save, {"symbols": ["BENCH"]})
    reg.promote(version)
    return version


def traded_on(r: redis.Redis, symbol: str, version: str) -> int:
    """Candles of the symbol's recent history traded on the model ``version``."""
    entries: list[tuple[str, dict[str, str]]] = r.xrevrange(f"{NS}hist:{symbol}", count=200)  # type: ignore[assignment]
    return sum(1 for _, fields in entries if fields.get("mv") == version)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ohlcv", type=cli_path, required=True, help="candle file to train the model on")
    ap.add_argument("--engines", type=int, default=15)
    ap.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    ap.add_argument("--candles", type=int, default=10, help="candles every engine trades on the model first")
    args = ap.parse_args(argv)
    if args.engines < 1 or not args.ohlcv.is_file():
        print("bench: error: --engines must be >= 1 and --ohlcv a file", file=sys.stderr)
        return 2
    symbols = [f"M{i:02d}USDT" for i in range(args.engines)]
    with tempfile.TemporaryDirectory(prefix="levibot-benchmem-") as tmp:
        data = Path(tmp) / "data"
        version = train(args.ohlcv, data / "models")
        config = Path(tmp) / "engines.yaml"
        config.write_text("defaults:\n  strategy: {name: ensemble}\n  size_usd: 1000\n")
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        r = connect(server.url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEVIBOT_")}
        env.update({"LEVIBOT_REDIS_URL": server.url, "LEVIBOT_NAMESPACE": NS, "LEVIBOT_DATA_DIR": str(data),
                    "LEVIBOT_SYNTHETIC_INTERVAL_S": "1.0"})  # a candle a second: the fleet keeps up on 2 cores
        if args.backend == "torch":
            env.update({"LEVIBOT_TFT_BACKEND": "torch", "LEVIBOT_GBDT_BACKEND": "native"})
        started = time.monotonic()
        mgr = subprocess.Popen([sys.executable, "-m", "backend.src.engine_manager", "--symbols", ",".join(symbols),
                                "--config", str(config), "--no-api", "--no-analytics", "--no-bot", "--workers", "0"],
                               env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 300
            while True:
                traded = {s: traded_on(r, s, version) for s in symbols}
                if all(n >= args.candles for n in traded.values()):
                    break
                if time.monotonic() > deadline or mgr.poll() is not None:
                    print(f"bench: engines did not trade on the model: {traded}", file=sys.stderr)
                    return 1
                time.sleep(0.5)
            print(f"{args.engines} engines trading model {version} ({args.backend}) after "
                  f"{time.monotonic() - started:.1f}s")
            time.sleep(2.0)
            manager = psutil.Process(mgr.pid)
            tree = manager.children(recursive=True)
            engines = [p for p in tree if any(f"engine-{s}" in " ".join(p.cmdline()) for s in symbols)]
            server_pid = server.proc.pid if server.proc else -1
            others = [p for p in tree if p not in engines and p.pid != server_pid]
            (mgr_mb, mgr_pss), (fork_mb, fork_pss), (eng_mb, eng_pss) = (footprint(x) for x in ([manager], others,
                                                                                               engines))
            pss = mgr_pss + fork_pss + eng_pss
            restarts = sum(int(r.hget(f"{NS}engine:{s}", "restarts") or 0) for s in symbols)  # type: ignore[arg-type]
            print(f"memory USS ({args.backend}): manager + forkserver + {len(engines)} engines "
                  f"{mgr_mb + fork_mb + eng_mb:.0f} MB (manager {mgr_mb:.0f} MB, forkserver {fork_mb:.0f} MB, "
                  f"engines {eng_mb:.0f} MB, {eng_mb / max(1, len(engines)):.1f} MB each); PSS {pss:.0f} MB "
                  f"(shared pages counted once, split among their users: the tree's real footprint); "
                  f"{restarts} engine restarts")
        finally:
            mgr.terminate()
            mgr.wait(60)
            r.close()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
