"""The real nightly_retrain.sh on replayed real candles: a night promotes a model and the API
shows it; kill -9 at each step leaves production untouched and the lock free; a failed fetch
aborts with an alert; a writer that runs out of space never promotes a partial model."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from backend.src.core.keys import Keys
from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.settings import REPO_ROOT
from backend.src.models.registry import Registry
from backend.tests.conftest import OHLCV_DIR, ApiServer, fast_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # five nights, each up to 300 s
SCRIPT = REPO_ROOT / "backend" / "scripts" / "nightly_retrain.sh"


def night_env(tmp: Path, url: str, ns: str, data: Path) -> dict[str, str]:
    replay = tmp / "exchange"
    if not replay.exists():
        replay.mkdir()
        for name in ("ETH_BTC-5m.csv", "LTC_BTC-5m.csv"):
            (replay / name).symlink_to(OHLCV_DIR / name)
    # a small night (the script's mechanics are under test here, not the model: that is the held-out
    # evaluation's job, and the gate against the baselines has its own test): 3 trials over the last 8 days,
    # one small TFT on 600 windows
    env = fast_env(url, ns, data, retrain_symbols='["ETHBTC","LTCBTC"]', retrain_source=f"replay:{replay}",
                   retrain_trials=3, retrain_days=8, retrain_beat_baselines="false",
                   retrain_tuner_args="--tft-samples 600 --tft-epochs 1 --tft-sizes 16")
    env["LEVIBOT_PYTHON"] = sys.executable
    return env


@pytest.fixture(scope="module")
def first_night(tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis) -> tuple[dict[str, str], str]:
    """One completed night, shared: (its environment, its output)."""
    tmp = tmp_path_factory.mktemp("night")
    env = night_env(tmp, redis_server.url, f"night{os.getpid()}:", tmp / "data")
    out = run(env)
    assert out.returncode == 0, out.stdout + out.stderr
    return env, out.stdout


@pytest.fixture
def night(first_night: tuple[dict[str, str], str], tmp_path: Path, redis_server: EmbeddedRedis,
          ns: str) -> Iterator[dict[str, str]]:
    """A copy of the data after the first night, with its own namespace."""
    shutil.copytree(first_night[0]["LEVIBOT_DATA_DIR"], tmp_path / "data", symlinks=True)
    yield night_env(tmp_path, redis_server.url, ns, tmp_path / "data")


def run(env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)


def stats(r: redis.Redis, ns: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in r.hgetall(Keys(ns).retrain).items()}


def events(r: redis.Redis, ns: str) -> list[dict[str, str]]:
    return [fields for _id, fields in r.xrange(Keys(ns).events)]


def test_a_night_promotes_a_model_that_the_api_reports(first_night: tuple[dict[str, str], str],
                                                         r: redis.Redis) -> None:
    env, stdout = first_night
    ns = env["LEVIBOT_NAMESPACE"]
    reg = Registry(Path(env["LEVIBOT_DATA_DIR"]) / "models")
    version = reg.current()
    assert version is not None and "[collect]" in stdout and f"done: {version} in production" in stdout
    meta = reg.metadata(version)
    assert meta["symbols"] == ["ETHBTC", "LTCBTC"] and meta["n_trials"] == 3 and meta["holdout_bars"] == 288
    st = stats(r, ns)
    assert st["success_total"] == "1" and st["production_version"] == version
    assert any(e["type"] == "model_promoted" and e["version"] == version for e in events(r, ns))
    api = ApiServer(env)
    try:
        text = httpx.get(api.url + "/metrics", timeout=5).text
    finally:
        api.stop()
    assert "levibot_retrain_success_total 1.0" in text and "levibot_retrain_failure_total 0.0" in text
    assert f'levibot_model_sharpe_ratio{{version="{version}"}}' in text
    assert "levibot_retrain_duration_seconds_count 1.0" in text


def test_the_next_night_judges_a_new_candidate(night: dict[str, str], r: redis.Redis, ns: str) -> None:
    reg = Registry(Path(night["LEVIBOT_DATA_DIR"]) / "models")
    production = reg.current()
    out = run(night)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "+288 candles" in out.stdout  # one more day
    st = stats(r, ns)
    assert int(st.get("success_total", 0)) + int(st.get("rejected_total", 0)) == 1
    if st["last_status"] == "rejected":
        assert reg.current() == production and any(e["type"] == "model_rejected" for e in events(r, ns))
    else:
        assert reg.current() not in (None, production)


def kill_at(env: dict[str, str], module: str, tmp: Path, delay: float) -> None:
    """Run the script; kill -9 its whole process group ``delay`` s after ``module`` starts."""
    mark = tmp / f"started-{module}"
    wrapper = tmp / f"py-{module}"
    wrapper.write_text(f'#!/bin/bash\ncase "$*" in *{module}*) touch {mark};; esac\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    log = tmp / f"out-{module}.log"
    with log.open("w") as fh:
        p = subprocess.Popen(["bash", str(SCRIPT)], env={**env, "LEVIBOT_PYTHON": str(wrapper)}, cwd=REPO_ROOT,
                             stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: mark.exists() or p.poll() is not None, 240, what=f"{module} started")  # a loaded 2-core box
        assert mark.exists(), f"the run ended before {module}: {log.read_text()}"
        time.sleep(delay)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)
    lock = Path(env["LEVIBOT_DATA_DIR"]) / "retrain.lock"

    def released() -> bool:  # SIGKILL is delivered asynchronously: the lock goes when the last holder is gone
        return subprocess.run(["flock", "-n", str(lock), "true"], check=False).returncode == 0

    wait_for(released, 10, what="the kernel released the dead run's lock")


def test_kill_9_at_every_step_leaves_production_untouched(night: dict[str, str], tmp_path: Path) -> None:
    reg = Registry(Path(night["LEVIBOT_DATA_DIR"]) / "models")
    production = reg.current()
    for module, delay in (("data_collector", 0.5), ("feature_pipeline", 1.0), ("auto_tuner", 4.0),
                          ("validate_model", 0.25)):  # it runs the ONNX model: done in < 1 s
        kill_at(night, module, tmp_path, delay)
        assert reg.current() == production, f"killed in {module}"
        reg.verify(production)
    out = run(night)  # the lock is free again and the night completes
    assert out.returncode == 0 and "another retrain holds" not in out.stdout, out.stdout + out.stderr
    assert not [p for p in reg.root.iterdir() if p.name.startswith(".tmp-")], "a dead writer's temp dir is cleaned"


def test_overlapping_runs_are_refused(night: dict[str, str], tmp_path: Path) -> None:
    data = Path(night["LEVIBOT_DATA_DIR"])
    holder = subprocess.Popen(["flock", str(data / "retrain.lock"), "sleep", "30"])
    try:
        time.sleep(0.3)
        out = run(night)
        assert out.returncode == 75 and "another retrain holds" in out.stdout
    finally:
        holder.kill()
        holder.wait()


def test_a_failed_fetch_aborts_cleanly_with_an_alert(night: dict[str, str], r: redis.Redis, ns: str) -> None:
    night["LEVIBOT_RETRAIN_SOURCE"] = "replay:/nonexistent/exchange"
    out = run(night)
    assert out.returncode != 0 and "[collect] FAILED" in out.stdout
    st = stats(r, ns)
    assert st["failure_total"] == "1" and st["last_step"] == "collect"
    assert any(e["type"] == "retrain_failed" and "collect" in e["reason"] for e in events(r, ns))
    assert Registry(Path(night["LEVIBOT_DATA_DIR"]) / "models").current() is not None  # production untouched


def test_a_full_disk_never_promotes_a_partial_model(night: dict[str, str], tmp_path: Path,
                                                    r: redis.Redis, ns: str) -> None:
    reg = Registry(Path(night["LEVIBOT_DATA_DIR"]) / "models")
    production, versions = reg.current(), reg.versions()
    # the tuner's writes stop at 16 KiB per file (EFBIG, as on a full disk): the model files can't be written
    wrapper = tmp_path / "py-full"
    wrapper.write_text(f'#!/bin/bash\ncase "$*" in *auto_tuner*) ulimit -f 16; trap "" XFSZ;; esac\n'
                       f'exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    out = run({**night, "LEVIBOT_PYTHON": str(wrapper)})
    assert out.returncode != 0 and "[tune] FAILED" in out.stdout, out.stdout + out.stderr
    assert reg.current() == production and reg.versions() == versions
    assert json.loads(json.dumps(stats(r, ns)))["last_step"] == "tune"
