"""Shared fixtures: one real Redis server for the session, started by the project's launcher.

Every test gets its own key namespace and data directory, so tests never see each other.
"""

from __future__ import annotations

import atexit
import os

# One thread per model fit and per BLAS/OpenMP pool, in this process and every process it starts: test
# workers run side by side (pytest-xdist), and OpenMP threads spinning on busy cores slow a fit tenfold.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis

from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.redis_url import connect
from backend.src.core.settings import REPO_ROOT, Settings
from backend.tests.machine import MachineLock
from backend.tests.ohlcv_data import generate_ohlcv, real_ohlcv_dir

REAL_OHLCV = real_ohlcv_dir()
# Real Binance candles when they sit beside the repository, else generated ones of the same
# names and shapes (a fresh clone, GitHub CI): every data test runs either way.
OHLCV_DIR = REAL_OHLCV or generate_ohlcv(Path(tempfile.mkdtemp(prefix="levibot-test-ohlcv-")))
if REAL_OHLCV is None:
    atexit.register(shutil.rmtree, OHLCV_DIR, True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller: its workers inherit the paths set here
        scratch_in_memory(config)
        MachineLock.configure(config.add_cleanup)
        compile_project()


def compile_project() -> None:
    """Byte-compile the project once for the run, in parallel. Hundreds of processes the tests start
    (managers, APIs, workers, CLIs) import it; where PYTHONDONTWRITEBYTECODE is set (as on CI machines)
    each would otherwise compile the project's ~30k lines again at its start (reading .pyc is unaffected)."""
    import compileall

    compileall.compile_dir(str(REPO_ROOT / "backend"), quiet=1, workers=0)


def scratch_in_memory(config: pytest.Config) -> None:
    """The run's temporary files (pytest's tmp_path, every ``tempfile`` of the tests and the processes they
    start) in a fresh directory on the shared-memory tmpfs, where there is one and the user set no TMPDIR.
    Engines fsync their journals on every write; on a shared disk one test's heavy writes (the analytics
    benchmark's million rows) stalled another test's engine in fsync for 5 s, and its watchdog rightly
    took that for a hang. Kill -9 semantics are the same in memory (the page cache outlives the process)."""
    shm = Path("/dev/shm")
    if "TMPDIR" in os.environ or not sys.platform.startswith("linux") or not os.access(shm, os.W_OK):
        return
    directory = tempfile.mkdtemp(prefix="levibot-tests-", dir=shm)
    os.environ["TMPDIR"] = directory
    tempfile.tempdir = None  # computed again from TMPDIR
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))


@pytest.fixture(scope="session")
def machine_lock() -> Iterator[MachineLock]:
    lock = MachineLock.for_this_run()
    yield lock
    lock.close()


@pytest.fixture(autouse=True)
def machine(machine_lock: MachineLock) -> Iterator[MachineLock]:
    """Every test shares the machine; ``with machine.alone():`` has it to itself (see machine.py)."""
    machine_lock.enter()
    yield machine_lock
    machine_lock.leave()


@pytest.fixture
def ns() -> str:
    return f"test{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def r(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = connect(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


FAST = {
    "heartbeat_interval_s": 0.2,
    "heartbeat_timeout_s": 2.0,
    "backoff_base_s": 0.2,
    "backoff_cap_s": 2.0,
    "synthetic_interval_s": 0.05,
    "stop_timeout_s": 5.0,
    "api_enabled": "false",
    "analytics_enabled": "false",
    "workers": 0,
    "risk_policy": str(REPO_ROOT / "backend" / "tests" / "fixtures" / "policy_permissive.yaml"),
}


@pytest.fixture
def settings(redis_server: EmbeddedRedis, ns: str, data_dir: Path) -> Settings:
    return Settings(redis_url=redis_server.url, namespace=ns, data_dir=data_dir, **FAST)  # type: ignore[arg-type]


def fast_env(url: str, ns: str, data_dir: Path, **extra: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVIBOT_")}
    env.update({"LEVIBOT_REDIS_URL": url, "LEVIBOT_NAMESPACE": ns, "LEVIBOT_DATA_DIR": str(data_dir)})
    env.update({f"LEVIBOT_{k.upper()}": str(v) for k, v in {**FAST, **extra}.items()})
    return env


FAST_CONFIG = """
defaults:
  strategy: {name: sma_crossover, fast: 2, slow: 5}
  size_usd: 1000
  quote_usd: 50000  # BTC-quoted replay pairs: 1000 USD of notional is 0.02 BTC
  annual_volatility: 3.0
"""


def wait_for(cond: Callable[[], object], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or cond}")
        time.sleep(interval)


class ManagerProc:
    """The real CLI in a subprocess, as a user starts it."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path = REPO_ROOT) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backend.src.engine_manager", *args],
            env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def output(self) -> tuple[str, str]:
        out, err = self.proc.communicate(timeout=30)
        return out, err


def engine_pids(symbol: str, data_dir: Path) -> list[int]:
    """What ``pgrep -f engine-<SYMBOL>`` would find (exact title token), among the engines with a
    file open under ``data_dir`` (their journal and log): a test sees its own engines, never
    another run's engines of the same name.
    """
    out = []
    root = str(data_dir.resolve()) + os.sep
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if f"engine-{symbol}" not in " ".join(p.info["cmdline"] or []).split():
                continue
            if any(f.path.startswith(root) for f in p.open_files()):
                out.append(p.info["pid"])
        except psutil.Error:
            continue
    return out


def http_up(url: str) -> bool:
    """The API at ``url`` answers ``/health``."""
    import httpx

    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class ApiServer:
    """``uvicorn backend.src.app.main:app`` on a free loopback port, as an operator runs it alone."""

    def __init__(self, env: dict[str, str]) -> None:
        from backend.src.core.redis_launcher import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "backend.src.app.main:app", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--timeout-graceful-shutdown", "1"],
            env=env, cwd=REPO_ROOT,
        )
        import httpx

        def up() -> bool:
            try:
                return httpx.get(self.url + "/openapi.json", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 20, what="api up")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def api_token() -> str:
    return "t0ken-" + uuid.uuid4().hex


@pytest.fixture
def api(redis_server: EmbeddedRedis, ns: str, data_dir: Path, api_token: str) -> Iterator[ApiServer]:
    server = ApiServer(fast_env(redis_server.url, ns, data_dir, api_token=api_token))
    yield server
    server.stop()


@pytest.fixture
def engine_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "engines.yaml"
    cfg.write_text(FAST_CONFIG)
    return cfg


@pytest.fixture
def start_manager(
    redis_server: EmbeddedRedis, ns: str, data_dir: Path, engine_config: Path
) -> Iterator[Callable[..., ManagerProc]]:
    started: list[ManagerProc] = []

    def start(
        symbols: list[str], *args: str, url: str | None = None, data: Path | None = None, **env: object
    ) -> ManagerProc:
        m = ManagerProc(
            ["--symbols", ",".join(symbols), "--config", str(engine_config), *args],
            fast_env(url or redis_server.url, ns, data or data_dir, **env),
        )
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()


def require_binary(name: str, package: str = "prometheus") -> str:
    """Path of a system tool the test needs. Missing: skip, or fail when LEVIBOT_TEST_STRICT=1 (CI)."""
    import shutil

    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not installed (Debian: apt-get install {package})"
    if os.environ.get("LEVIBOT_TEST_STRICT") == "1":
        pytest.fail(message)
    pytest.skip(message)


# The longest files (seconds in one process, `--durations`), handed to the xdist workers first so the run
# does not end on one of them alone; the rest follow in collection order. The Redis outage comes last of
# them: its real-time window (machine.alone()) waits for the other workers' current tests to end.
LONGEST_FIRST = (
    "scripts/test_nightly_retrain.py",  # ~110 s alone: five small nights, killed at every step
    "integration/test_parity.py",  # ~65 s: 27 engines and the backtester on every candle file
    "integration/test_live_source.py",  # ~70 s
    "integration/test_clickhouse.py",  # ~80 s
    "ml/research/test_auto_tuner.py",  # ~40 s
    "integration/test_sentinel_failover.py",  # ~25 s: five redis-servers, a manager, its API and a worker
    "integration/test_pool.py",  # ~25 s: managers with busy engines, kill -9 of whole trees
    "integration/test_redis_outage.py",  # ~85 s, mostly waiting out a 60 s outage
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        return next((i for i, name in enumerate(LONGEST_FIRST) if path.endswith(name)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: each file's tests keep their order
