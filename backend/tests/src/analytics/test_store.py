"""The embedded store has one owner at a time: a CLI query never opens chDB beside a process that owns
it (chDB refuses a second instance on a directory), it waits for the owner to serve or to go."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.src.analytics.server import StoreServer, new_password
from backend.src.analytics.store import ChdbStore, StoreError, lock_store, owned_store, store_dir, url_file
from backend.src.core.settings import Settings
from backend.tests.conftest import REPO_ROOT

HOLD = """
import sys, time
from backend.src.analytics.store import lock_store
from backend.src.core.settings import Settings
lock_store(Settings(data_dir=sys.argv[1]))
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def holder(data_dir: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process owning the store without serving it (an analytics process starting)."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(data_dir), str(seconds)], cwd=REPO_ROOT,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline() == "held\n"
    return p


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)  # type: ignore[call-arg]


def test_a_query_waits_for_the_owner_and_says_so_when_it_stays(settings: Settings) -> None:
    p = holder(settings.data_dir, 60)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreError, match="stayed busy for 1s"), owned_store(settings, wait_s=1.0):
            pass
        assert time.monotonic() - t0 >= 1.0
        assert not (store_dir(settings) / "db").exists(), "chDB was not opened beside the owner"
        os.kill(p.pid, signal.SIGKILL)  # the owner dies: the kernel drops its lock
        p.wait()
        with owned_store(settings, wait_s=1.0) as store:
            assert store.execute("SELECT 41 + 1") == "42\n"
    finally:
        p.kill()
        p.wait()


def test_a_query_opens_the_store_once_the_owner_lets_go(settings: Settings) -> None:
    p = holder(settings.data_dir, 1.5)
    try:
        with owned_store(settings, wait_s=30.0) as store:
            assert store.execute("SELECT 1") == "1\n"
        assert p.wait(5) == 0
    finally:
        p.kill()


def test_a_served_store_is_asked_over_http_and_a_dead_ones_url_is_passed_over(settings: Settings) -> None:
    lock = lock_store(settings)
    chdb = ChdbStore(store_dir(settings) / "db")
    server = StoreServer(chdb, new_password(), port=0).start()
    try:
        url_file(settings).write_text(server.url)
        with owned_store(settings, wait_s=1.0) as store:
            assert type(store).__name__ == "HttpStore" and store.execute("SELECT 2") == "2\n"
    finally:
        server.stop()
        chdb.close()
        os.close(lock)
    # the URL left behind by a server that is gone: the store is opened here, under the lock
    with owned_store(settings, wait_s=1.0) as store:
        assert type(store).__name__ == "ChdbStore" and store.execute("SELECT 3") == "3\n"
    os.close(lock_store(settings))  # released after the query (else BlockingIOError)
