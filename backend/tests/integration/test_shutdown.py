"""Stopping the service the way service managers do: one decision, whichever process sees the signal first.

systemd's default ``KillMode=control-group`` (and ``timeout``, container inits that forward to the group)
sends SIGTERM to every process at once, not to the manager alone. The engines that see it before the
manager must stop cleanly and be taken for stopped, not crashed: no restart, no new generation opening a
position, no ``crashed`` event or alert, restart counts unchanged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import redis

from backend.src.core.settings import REPO_ROOT
from backend.tests.conftest import ManagerProc, fast_env, wait_for
from backend.tests.integration.helpers import events, fills, journal_entries, journal_position, state, wait_running

SYMS = ["BTCUSDT", "ETHUSDT"]
Start = Callable[..., ManagerProc]


def holding(data_dir: Path) -> bool:
    return any(abs(journal_position(data_dir, s)) > 0 for s in SYMS)


def generations(data_dir: Path, symbol: str) -> set[int]:
    return {int(e["gen"]) for e in journal_entries(data_dir, symbol) if "gen" in e}  # type: ignore[call-overload]


def check_stopped_not_crashed(r: redis.Redis, ns: str, data_dir: Path, gens: dict[str, set[int]],
                              signalled_at: float) -> None:
    assert events(r, ns, "crashed") == [] and events(r, ns, "hung") == [] and events(r, ns, "failed") == []
    for sym in SYMS:
        st = state(r, ns, sym)
        assert st["status"] == "stopped" and st.get("restarts", "0") == "0", st
        assert generations(data_dir, sym) == gens[sym], "no new generation started"
        late = [f for f in fills(data_dir, sym) if float(str(f["ts"])) > signalled_at + 0.5]
        assert late == [], f"{sym} traded after the stop began: {late}"


def test_a_sigterm_to_the_whole_process_group_is_a_clean_stop(
        redis_server: object, r: redis.Redis, ns: str, data_dir: Path, engine_config: Path) -> None:
    env = fast_env(redis_server.url, ns, data_dir)  # type: ignore[attr-defined]
    proc = subprocess.Popen([sys.executable, "-m", "backend.src.engine_manager", "--symbols", ",".join(SYMS),  # noqa: S603
                             "--config", str(engine_config)], env=env, cwd=REPO_ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_running(r, ns, SYMS)
        wait_for(lambda: holding(data_dir), 30, what="an engine holding a position")
        gens = {s: generations(data_dir, s) for s in SYMS}
        signalled_at = time.time()
        os.killpg(proc.pid, signal.SIGTERM)  # `kill -TERM -- -<pgid>`: the manager, the forkserver, the engines
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    check_stopped_not_crashed(r, ns, data_dir, gens, signalled_at)
    assert "crashed" not in err and "restarting" not in err


def test_every_process_of_the_service_signalled_at_once_restarts_nothing(
        redis_server: object, r: redis.Redis, ns: str, data_dir: Path, engine_config: Path) -> None:
    """Like systemd's control-group kill: the API, the analytics process and the RQ worker (each in its own
    session) are signalled too, and none is restarted."""
    env = fast_env(redis_server.url, ns, data_dir, api_enabled="true", analytics_enabled="true", workers=1,  # type: ignore[attr-defined]
                   api_port=0)
    from backend.src.core.redis_launcher import free_port

    env["LEVIBOT_API_PORT"] = str(free_port())
    proc = subprocess.Popen([sys.executable, "-m", "backend.src.engine_manager", "--symbols", ",".join(SYMS),  # noqa: S603
                             "--config", str(engine_config)], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_running(r, ns, SYMS)
        manager = psutil.Process(proc.pid)

        def children_up() -> list[psutil.Process] | None:
            kids = manager.children(recursive=True)
            cmdlines = [" ".join(k.cmdline()) for k in kids]
            wanted = ["uvicorn", "backend.src.analytics", "backend.ml.features.worker"]
            return kids if all(any(w in c for c in cmdlines) for w in wanted) else None

        kids = wait_for(children_up, 60, what="api, analytics and worker up")
        assert isinstance(kids, list)
        wait_for(lambda: holding(data_dir), 30, what="an engine holding a position")
        gens = {s: generations(data_dir, s) for s in SYMS}
        signalled_at = time.time()
        for p in [manager, *kids]:
            try:
                p.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    check_stopped_not_crashed(r, ns, data_dir, gens, signalled_at)
    assert "restarting in" not in err, "no child was restarted"


def test_a_sigterm_to_one_engine_stops_it_and_only_it(start_manager: Start, r: redis.Redis, ns: str,
                                                       data_dir: Path) -> None:
    m = start_manager(SYMS)
    pids = wait_running(r, ns, SYMS)
    os.kill(pids["BTCUSDT"], signal.SIGTERM)  # an operator's kill, or a tool that signals one process
    wait_for(lambda: state(r, ns, "BTCUSDT")["status"] == "stopped", 20, what="BTCUSDT stopped")
    time.sleep(1.0)  # longer than the restart backoff (0.2 s)
    st = state(r, ns, "BTCUSDT")
    assert st["status"] == "stopped" and st.get("restarts", "0") == "0"
    assert events(r, ns, "crashed") == [] and [e["symbol"] for e in events(r, ns, "stopped")] == ["BTCUSDT"]
    assert state(r, ns, "ETHUSDT")["status"] == "running"
    assert m.stop() == 0
