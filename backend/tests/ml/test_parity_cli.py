"""``python -m backend.ml.parity SYMBOL`` as a user runs it: the attribution in text and JSON from the data dir
and Redis, an unexplained drift over the threshold raised as a ``parity_drift`` event, one line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import redis

from backend.src.core.settings import REPO_ROOT
from backend.tests.conftest import fast_env
from backend.tests.ml.research.test_attribution import CFG, SYM, TRADED, WARM, fills, reference, without, write


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backend.ml.parity", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_command_explains_the_gap_and_alerts_an_unexplained_drift(redis_server, ns: str, data_dir: Path,
                                                                      r: redis.Redis) -> None:
    entries = reference()
    write(data_dir, without(entries, fills(entries)[9]), [("first", WARM, TRADED)])  # a decision nothing explains
    r.hset(f"{ns}config:{SYM}", mapping={"json": CFG.model_dump_json(), "version": "1"})
    r.hset(f"{ns}engine:{SYM}", mapping={"equity": "10000", "strategy_hash": ""})
    env = fast_env(redis_server.url, ns, data_dir, parity_drift_pct=0.01)
    res = run(env, SYM)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"{SYM}: latest session") and "unexplained" in lines[2]
    assert lines[3].split()[:3] == ["decision", "(unexplained)", lines[3].split()[2]] and "100%" in lines[3]
    drift = [f for _, f in r.xrange(f"{ns}events") if f["type"] == "parity_drift"]  # type: ignore[misc]
    assert len(drift) == 1 and drift[0]["symbol"] == SYM and drift[0]["share"] == "100%"
    out = json.loads(run({**env, "LEVIBOT_PARITY_DRIFT_PCT": "0"}, SYM, "--json").stdout)["attribution"]
    assert out["causes"][0]["cause"] == "decision" and abs(out["unexplained"] - out["gap"]) < 1e-9 and out["gap"]
    assert len([f for _, f in r.xrange(f"{ns}events") if f["type"] == "parity_drift"]) == 1, "0: no alert"
    bad = run(env, "NOPEUSDT")
    assert bad.returncode == 2 and bad.stderr.strip() == "parity: error: symbol: no published config for NOPEUSDT " \
        "(is it managed here?)"

