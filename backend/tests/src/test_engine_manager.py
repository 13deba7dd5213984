"""The manager CLI on bad input, on an unreachable Redis, and on embedded defaults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from backend.src.core.settings import REPO_ROOT
from backend.tests.conftest import OHLCV_DIR, ManagerProc, engine_pids, fast_env, wait_for


def run_cli(args: list[str], env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.src.engine_manager", *args],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def bad_yaml(tmp_path: Path) -> dict[str, Path]:
    files = {
        "syntax": "defaults: {size_usd: [1, 2\n",
        "negative_size": "symbols:\n  BTCUSDT: {size_usd: -5}\n",
        "unknown_key": "defaults: {sizee_usd: 5}\n",
        "fast_slow": "defaults:\n  strategy: {fast: 30, slow: 10}\n",
        "not_mapping": "- a\n- b\n",
    }
    out = {}
    for name, text in files.items():
        out[name] = tmp_path / f"{name}.yaml"
        out[name].write_text(text)
    return out


CASES = [
    (["--symbols", ""], "--symbols: empty"),
    (["--symbols", "BTCUSDT,,ETHUSDT"], "empty entry"),
    (["--symbols", "BTC USDT!"], "malformed symbol"),
    (["--symbols", "BTCUSDT,ETHUSDT,BTCUSDT"], "duplicate symbol BTCUSDT"),
    (["--symbols", "BTCUSDT", "--source", "kraken"], "unknown source 'kraken'"),
    (["--symbols", "BTCUSDT", "--source", "replay:"], "replay needs a path"),
    (["--symbols", "BTCUSDT", "--source", "replay:/nonexistent/file.csv"], "does not exist"),
    (["--symbols", "BTCUSDT", "--config", "/nonexistent.yaml"], "--config: cannot read"),
    (["--symbols", "BTCUSDT", "--replay-speed", "-1"], "LEVIBOT_REPLAY_SPEED"),
    (["--symbols", "BTCUSDT", "--bogus"], "unrecognized arguments"),
    ([], "--symbols: empty, and no --config with a symbols: section"),
    (["--symbols", "BTCUSDT", "--pool", "two words"], "LEVIBOT_POOL: String should match pattern"),
    (["--symbols", "BTCUSDT", "--pool", "p", "--max-engines", "0"], "LEVIBOT_MAX_ENGINES: Input should be greater"),
]


@pytest.mark.parametrize(("args", "message"), CASES)
def test_bad_arguments_one_line_exit_2_nothing_written(
    args: list[str], message: str, redis_server, ns: str, data_dir: Path
) -> None:
    res = run_cli(args, fast_env(redis_server.url, ns, data_dir))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not data_dir.exists(), "nothing written on bad input"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("syntax", "is not valid YAML at line"),
        ("negative_size", "symbols.BTCUSDT.size_usd: Input should be greater than 0"),
        ("unknown_key", "sizee_usd: Extra inputs are not permitted"),
        ("fast_slow", "fast must be smaller than slow"),
        ("not_mapping", "top level must be a mapping"),
    ],
)
def test_invalid_yaml_names_the_field(
    name: str, message: str, bad_yaml: dict[str, Path], redis_server, ns: str, data_dir: Path
) -> None:
    res = run_cli(["--symbols", "BTCUSDT", "--config", str(bad_yaml[name])], fast_env(redis_server.url, ns, data_dir))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res.stderr
    assert not data_dir.exists()


def test_unreadable_replay_file(tmp_path: Path, redis_server, ns: str, data_dir: Path) -> None:
    bad = tmp_path / "BTCUSDT-5m.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n1,2,3,4,5,6\nnot,a,number,at,all,x\n")
    res = run_cli(["--symbols", "BTCUSDT", "--source", f"replay:{bad}"], fast_env(redis_server.url, ns, data_dir))
    assert res.returncode == 2 and "line 3: malformed row" in res.stderr and res.stderr.count("\n") == 1
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 4)
    res = run_cli(["--symbols", "BTCUSDT", "--source", f"replay:{garbage}"], fast_env(redis_server.url, ns, data_dir))
    assert res.returncode == 2 and "garbage.csv: cannot read" in res.stderr and res.stderr.count("\n") == 1
    parquet = tmp_path / "fake.parquet"
    parquet.write_text("not parquet")
    res = run_cli(["--symbols", "BTCUSDT", "--source", f"replay:{parquet}"], fast_env(redis_server.url, ns, data_dir))
    assert res.returncode == 2 and "not a readable Parquet file" in res.stderr
    assert not data_dir.exists()


def test_replay_directory_needs_a_file_per_symbol(redis_server, ns: str, data_dir: Path) -> None:
    res = run_cli(["--symbols", "BTCUSDT", "--source", f"replay:{OHLCV_DIR}"],
                  fast_env(redis_server.url, ns, data_dir))
    assert res.returncode == 2 and "no replay file for BTCUSDT" in res.stderr


def test_bad_environment_setting_names_the_variable(redis_server, ns: str, data_dir: Path) -> None:
    env = fast_env(redis_server.url, ns, data_dir, heartbeat_timeout_s="soon")
    res = run_cli(["--symbols", "BTCUSDT"], env)
    assert res.returncode == 2 and "LEVIBOT_HEARTBEAT_TIMEOUT_S" in res.stderr and res.stderr.count("\n") == 1


def test_a_pool_needs_a_shared_redis_and_a_sentinel_url_is_checked(ns: str, data_dir: Path) -> None:
    env = {k: v for k, v in fast_env("redis://127.0.0.1:1/0", ns, data_dir).items() if k != "LEVIBOT_REDIS_URL"}
    res = run_cli(["--symbols", "BTCUSDT", "--pool", "main"], env)
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "--pool: set LEVIBOT_REDIS_URL to the Redis every member of the pool reaches" in res.stderr
    env["LEVIBOT_REDIS_URL"] = "redis+sentinel://:s3cret@127.0.0.1:1/mymaster/zero"
    res = run_cli(["--symbols", "BTCUSDT"], env)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "LEVIBOT_REDIS_URL: Value error" in res.stderr
    assert "s3cret" not in res.stderr
    env["LEVIBOT_REDIS_URL"] = "redis+sentinel://:s3cret@127.0.0.1:1/mymaster/0"  # nobody answers there
    res = run_cli(["--symbols", "BTCUSDT", "--pool", "main"], env)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "redis at redis+sentinel://***@127.0.0.1:1" in \
        res.stderr, res.stderr
    assert "s3cret" not in res.stderr and not data_dir.exists()


def test_unreachable_redis_is_one_line_exit_2(ns: str, data_dir: Path) -> None:
    env = fast_env("redis://127.0.0.1:1/0", ns, data_dir)
    res = run_cli(["--symbols", "BTCUSDT"], env)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "redis at redis://127.0.0.1:1/0 is unreachable" in res.stderr
    assert "Traceback" not in res.stderr


def test_embedded_redis_default_run_and_clean_stop(tmp_path: Path) -> None:
    m, data = start_embedded(tmp_path, "BTCUSDT,ETHUSDT")
    try:
        redis_procs = _redis_servers(m)
        assert len(redis_procs) == 1 and "127.0.0.1" in " ".join(redis_procs[0].cmdline())
        assert (data / "redis").is_dir() and any((data / "redis").rglob("*.aof*"))
        children = m.descendants()
    finally:
        assert m.stop() == 0
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []
    assert json.loads((data / "engine_registry.json").read_text())["BTCUSDT"]["status"] == "stopped"


def test_embedded_redis_dies_with_a_killed_manager(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = embedded_env(data)
    m = ManagerProc(["--symbols", "BTCUSDT"], env)
    wait_for(lambda: _all_running(data / "engine_registry.json"), 30, what="engine running")
    children = m.descendants()
    os.kill(m.pid, signal.SIGKILL)
    m.proc.wait()
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [], "redis-server, forkserver and engine all exit"
    time.sleep(0.1)
    assert engine_pids("BTCUSDT", data) == []


def _redis_servers(m: ManagerProc) -> list[psutil.Process]:
    out = []
    for p in m.descendants():
        try:
            if "redis-server" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:  # a killed child not reaped yet
            continue
    return out


def embedded_env(data: Path, **extra: str) -> dict[str, str]:
    """No LEVIBOT_REDIS_URL: the manager starts its own Redis under ``data``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVIBOT_")}
    return env | {"LEVIBOT_API_ENABLED": "0", "LEVIBOT_DATA_DIR": str(data), **extra}


def start_embedded(tmp_path: Path, symbols: str) -> tuple[ManagerProc, Path]:
    """The manager on embedded defaults (its own Redis), once every engine runs."""
    data = tmp_path / "data"
    m = ManagerProc(["--symbols", symbols], embedded_env(data, LEVIBOT_SYNTHETIC_INTERVAL_S="0.05"))
    wait_for(lambda: _all_running(data / "engine_registry.json"), 30, what="engines running")
    return m, data


def _all_running(path: Path) -> bool:
    try:
        reg = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return bool(reg) and all(v["status"] == "running" for v in reg.values())


def test_embedded_redis_killed_is_restarted_and_engines_carry_on(tmp_path: Path) -> None:
    m, data = start_embedded(tmp_path, "BTCUSDT")
    try:
        (engine,) = engine_pids("BTCUSDT", data)
        (redis_proc,) = _redis_servers(m)
        redis_proc.kill()
        new_redis = wait_for(lambda: [p for p in _redis_servers(m) if p.pid != redis_proc.pid], 10,
                             what="embedded redis restarted")
        assert new_redis
        mtime = (data / "engine_registry.json").stat().st_mtime
        wait_for(lambda: (data / "engine_registry.json").stat().st_mtime > mtime + 0.5, 10, what="mirror resumes")
        assert engine_pids("BTCUSDT", data) == [engine], "the engine rode it out"
        assert json.loads((data / "engine_registry.json").read_text())["BTCUSDT"]["restarts"] == 0
    finally:
        assert m.stop() == 0


def test_manager_runs_its_api_and_restarts_it(redis_server, ns: str, data_dir: Path) -> None:
    import httpx

    from backend.src.core.redis_launcher import free_port

    port = free_port()
    m = ManagerProc(["--symbols", "BTCUSDT", "--api-port", str(port)],
                    fast_env(redis_server.url, ns, data_dir, api_enabled="true"))
    url = f"http://127.0.0.1:{port}"

    def api_up() -> bool:
        try:
            return httpx.get(url + "/engines/status", timeout=1).json()["running"] == 1
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    try:
        wait_for(api_up, 30, what="api up with the engine running")
        (api,) = [p for p in m.descendants() if "uvicorn" in " ".join(p.cmdline())]
        api.kill()
        api.wait(5)
        wait_for(api_up, 10, what="api restarted")
    finally:
        assert m.stop() == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(url + "/health", timeout=1)


def test_more_symbols_than_the_engine_limit_are_refused_writing_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    syms = ",".join(f"S{i:03d}USDT" for i in range(500))
    res = run_cli(["--symbols", syms], embedded_env(data, LEVIBOT_MAX_ENGINES="40"))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "LEVIBOT_MAX_ENGINES: 500 symbols exceed" in res.stderr, res.stderr
    assert not data.exists(), "a refused start writes nothing"


def test_default_engine_limit_follows_cores_and_memory() -> None:
    from backend.src.core.settings import Settings, default_max_engines

    n = default_max_engines()
    cores = psutil.cpu_count() or 1
    assert 1 <= n <= 25 * cores and n <= psutil.virtual_memory().total // (128 * 2**20)
    assert Settings().max_engines == n


def test_sigint_during_a_large_launch_stops_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    syms = ",".join(f"L{i:02d}USDT" for i in range(40))
    m = ManagerProc(["--symbols", syms], embedded_env(data, LEVIBOT_MAX_CONCURRENT_STARTS="1"))
    wait_for(lambda: (data / "engine_registry.json").exists(), 30, what="manager up")
    children = m.descendants()
    t0 = time.monotonic()
    m.proc.send_signal(signal.SIGINT)
    assert m.proc.wait(20) == 0
    took = time.monotonic() - t0
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [] and took < 15, took
    reg = json.loads((data / "engine_registry.json").read_text())
    assert len(reg) >= 1 and {v["status"] for v in reg.values()} <= {"stopped"}, reg


def test_relative_paths_are_read_against_the_start_directory(tmp_path: Path) -> None:
    """--config and --data-dir relative to where the command runs, not where children run."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "fleet.yaml").write_text("defaults: {size_usd: 1234}\n")
    env = embedded_env(tmp_path / "unused", LEVIBOT_SYNTHETIC_INTERVAL_S="0.05")
    env.pop("LEVIBOT_DATA_DIR")
    env["PYTHONPATH"] = str(REPO_ROOT)  # as an installed package would be found from anywhere
    # coverage's subprocess hook reads its config relative to the cwd; outside the repo it would
    # measure the wrong files, so this one run goes unmeasured
    env = {k: v for k, v in env.items() if not k.startswith(("COVERAGE_", "COV_CORE_"))}
    m = ManagerProc(["--symbols", "BTCUSDT", "--config", "fleet.yaml", "--data-dir", "rel-data"], env, cwd=work)
    try:
        wait_for(lambda: _all_running(work / "rel-data" / "engine_registry.json"), 30, what="engine running")
    finally:
        assert m.stop() == 0
    assert not (REPO_ROOT / "rel-data").exists()
