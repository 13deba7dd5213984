"""The weekly rebalancer against real engines: plan, dry run, new sizes hot-reloaded."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import redis
import yaml

from backend.risk.rebalancer import plan
from backend.src.core.settings import REPO_ROOT
from backend.tests.conftest import ManagerProc, fast_env, wait_for
from backend.tests.integration.helpers import running_pid, state, wait_running


def test_inverse_volatility_plan() -> None:
    states = {"A": {"volatility": "0.01", "position": "1", "last_price": "100"},
              "B": {"volatility": "0.02", "position": "1", "last_price": "100"},
              "C": {"volatility": "0.0", "position": "0", "last_price": "1"}}
    rows = {r.symbol: r for r in plan(states, {"A": 1000.0, "B": 1000.0, "C": 500.0})}
    assert set(rows) == {"A", "B"}, "no volatility estimate yet: left alone"
    assert rows["A"].target_weight == 2 / 3 and rows["B"].new_size_usd == 666.67
    assert rows["A"].current_weight == 0.5 and round(rows["A"].drift_pp, 2) == -16.67


def test_rebalance_writes_sizes_engines_reload(start_manager: Callable[..., ManagerProc], engine_config: Path,
                                              r: redis.Redis, ns: str, data_dir: Path, redis_server) -> None:
    engine_config.write_text(engine_config.read_text() + "symbols:\n  CALMUSDT: {annual_volatility: 0.5}\n"
                             "  WILDUSDT: {annual_volatility: 4.0}\n")
    syms = ["CALMUSDT", "WILDUSDT"]
    start_manager(syms)
    pids = wait_running(r, ns, syms)
    wait_for(lambda: all(float(state(r, ns, s).get("volatility") or 0) > 0 for s in syms) and
             int(state(r, ns, "CALMUSDT").get("candles") or 0) > 30, 20, what="volatility estimates")
    env = fast_env(redis_server.url, ns, data_dir)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "backend.risk.rebalancer", *args], env=env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=60)

    dry = run("--dry-run")
    assert dry.returncode == 0 and "dry run: nothing written" in dry.stdout, dry.stdout + dry.stderr
    assert "CALMUSDT" in dry.stdout and not (data_dir / "rebalance.yaml").exists()
    res = run()
    assert res.returncode == 0, res.stderr
    sizes = {s: v["size_usd"] for s, v in yaml.safe_load((data_dir / "rebalance.yaml").read_text())["symbols"].items()}
    assert sizes["CALMUSDT"] > sizes["WILDUSDT"], "the calmer market gets the bigger size"
    assert abs(sum(sizes.values()) - 2000) < 0.05, "same total budget"
    wait_for(lambda: all(state(r, ns, s).get("config_version") == "2" for s in syms), 5, what="hot reload")
    import json

    assert json.loads(r.hget(f"{ns}config:CALMUSDT", "json"))["size_usd"] == sizes["CALMUSDT"]
    assert {s: running_pid(r, ns, s) for s in syms} == pids, "no restart"
