"""The supervisor with real processes, real Redis and real signals."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import redis

from backend.tests.conftest import ManagerProc, engine_pids, wait_for
from backend.tests.integration.helpers import (
    events,
    fills,
    journal_entries,
    journal_position,
    running_pid,
    state,
    wait_running,
)

SYMS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
Start = Callable[..., ManagerProc]


def test_lifecycle_registry_logs_and_clean_shutdown(
    start_manager: Start, r: redis.Redis, ns: str, data_dir: Path
) -> None:
    m = start_manager(SYMS)
    pids = wait_running(r, ns, SYMS)
    for sym, pid in pids.items():
        assert engine_pids(sym, data_dir) == [pid], "pgrep -f engine-<SYMBOL> finds exactly the engine"
    wait_for(lambda: all(fills(data_dir, s) for s in SYMS), 20, what="every engine trades")

    reg = wait_for(lambda: _registry_running(data_dir, SYMS), 5, what="registry mirror")
    assert set(reg) == set(SYMS)
    for sym in SYMS:
        entry = reg[sym]
        assert entry["status"] == "running" and entry["pid"] == pids[sym]
        assert {"uptime", "last_trade", "pnl", "restarts", "last_error"} <= set(entry)

    assert m.stop() == 0
    _out, err = m.output()
    assert "Warning" not in err, "nothing but the manager's own lines on the terminal: " + err[-1000:]
    for sym in SYMS:
        assert state(r, ns, sym)["status"] == "stopped"
        assert engine_pids(sym, data_dir) == []
        for pid in pids.values():
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert json.loads((data_dir / "engine_registry.json").read_text())["BTCUSDT"]["status"] == "stopped"

    for sym in SYMS:
        (log,) = (data_dir / "logs").glob(f"engine-{sym}-*.jsonl")
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        assert lines and all(x["symbol"] == sym and x["pid"] == pids[sym] for x in lines)
        assert any(x["msg"] == "engine stopped" for x in lines)
    assert list((data_dir / "logs").glob("manager-*.jsonl"))


def _registry_running(data_dir: Path, syms: list[str]) -> dict[str, dict[str, object]] | None:
    try:
        reg = json.loads((data_dir / "engine_registry.json").read_text())
    except (OSError, ValueError):
        return None
    return reg if all(reg.get(s, {}).get("status") == "running" for s in syms) else None


def test_kill9_engine_restores_position_others_untouched(
    start_manager: Start, r: redis.Redis, ns: str, data_dir: Path
) -> None:
    start_manager(SYMS)
    pids = wait_running(r, ns, SYMS)
    wait_for(lambda: len(fills(data_dir, "BTCUSDT")) >= 3, 20, what="BTCUSDT fills")
    os.kill(pids["BTCUSDT"], signal.SIGSTOP)  # freeze it: the journal cannot move under our read
    before = journal_entries(data_dir, "BTCUSDT")

    killed_at = time.time()
    os.kill(pids["BTCUSDT"], signal.SIGKILL)
    new = wait_for(lambda: (p := running_pid(r, ns, "BTCUSDT")) and p != pids["BTCUSDT"] and p, 10,
                   what="BTCUSDT back")
    recovery = time.time() - killed_at
    assert recovery < 3.0, f"recovery took {recovery:.2f}s"
    st = state(r, ns, "BTCUSDT")
    assert st["restarts"] == "1" and "SIGKILL" in st["last_error"]
    assert journal_entries(data_dir, "BTCUSDT")[: len(before)] == before, "kill -9 lost or rewrote nothing"
    assert {s: running_pid(r, ns, s) for s in ("ETHUSDT", "SOLUSDT")} == {s: pids[s] for s in ("ETHUSDT", "SOLUSDT")}
    assert engine_pids("BTCUSDT", data_dir) == [new]

    wait_for(lambda: len(fills(data_dir, "BTCUSDT")) >= 6, 20, what="trading resumes")
    ids = [f["order_id"] for f in fills(data_dir, "BTCUSDT")]
    assert len(ids) == len(set(ids)), "no fill duplicated"
    candles = [f["candle_ts"] for f in fills(data_dir, "BTCUSDT")]
    assert candles == sorted(candles) and len(candles) == len(set(candles))
    gens = [e["gen"] for e in journal_entries(data_dir, "BTCUSDT")]
    assert gens == sorted(gens) and gens[-1] > gens[0], "the new engine writes with a newer generation"
    assert events(r, ns, "crashed", "BTCUSDT") and events(r, ns, "recovered", "BTCUSDT")


def test_position_matches_journal_after_restart(
    start_manager: Start, r: redis.Redis, ns: str, data_dir: Path
) -> None:
    m = start_manager(["BTCUSDT"])
    pid = wait_running(r, ns, ["BTCUSDT"])["BTCUSDT"]

    def shown() -> bool:  # the heartbeat follows the journal within the candle step that wrote it
        return abs(float(state(r, ns, "BTCUSDT")["position"]) - journal_position(data_dir, "BTCUSDT")) < 1e-9

    wait_for(lambda: len(fills(data_dir, "BTCUSDT")) >= 2 and shown(), 20, what="fills, shown in the state")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (p := running_pid(r, ns, "BTCUSDT")) and p != pid, 10, what="restarted")
    m.stop()  # the replacement flushes its state on the way out
    st = state(r, ns, "BTCUSDT")
    assert st["status"] == "stopped"
    assert abs(float(st["position"]) - journal_position(data_dir, "BTCUSDT")) < 1e-9, "rebuilt from the journal"


def test_sigstop_hung_engine_is_killed_and_restarted(
    start_manager: Start, r: redis.Redis, ns: str
) -> None:
    start_manager(["BTCUSDT", "ETHUSDT"])
    pids = wait_running(r, ns, ["BTCUSDT", "ETHUSDT"])
    os.kill(pids["BTCUSDT"], signal.SIGSTOP)
    new = wait_for(lambda: (p := running_pid(r, ns, "BTCUSDT")) and p != pids["BTCUSDT"] and p, 15,
                   what="hung engine replaced")
    assert new != pids["BTCUSDT"]
    wait_for(lambda: not psutil.pid_exists(pids["BTCUSDT"]), 5, what="stopped engine killed")
    assert "hung" in state(r, ns, "BTCUSDT")["last_error"]
    assert events(r, ns, "hung", "BTCUSDT")
    assert running_pid(r, ns, "ETHUSDT") == pids["ETHUSDT"]


def test_crash_loop_backs_off_then_fails(start_manager: Start, r: redis.Redis, ns: str, data_dir: Path) -> None:
    start_manager(["BTCUSDT", "ETHUSDT"])
    pids = wait_running(r, ns, ["BTCUSDT", "ETHUSDT"])
    seen = [pids["BTCUSDT"]]
    kill_times = []
    for _ in range(6):  # the first run plus 5 restarts, each killed as soon as it is up
        os.kill(seen[-1], signal.SIGKILL)
        kill_times.append(time.monotonic())
        if len(kill_times) == 6:
            break
        seen.append(wait_for(lambda: (p := running_pid(r, ns, "BTCUSDT")) and p not in seen and p, 20,
                             what="restart"))
    wait_for(lambda: state(r, ns, "BTCUSDT").get("status") == "failed", 10, what="failed")
    st = state(r, ns, "BTCUSDT")
    assert "6 crashes in a row" in st["last_error"]
    assert st["restarts"] == "5"
    gaps = [b - a for a, b in zip(kill_times, kill_times[1:], strict=False)]
    assert gaps[-1] > gaps[0], f"backoff grows: {gaps}"
    time.sleep(1.0)
    assert engine_pids("BTCUSDT", data_dir) == [], "a failed engine stays down"
    assert events(r, ns, "failed", "BTCUSDT")
    assert running_pid(r, ns, "ETHUSDT") == pids["ETHUSDT"]


def test_fifteen_engines_all_killed_at_once_come_back(start_manager: Start, r: redis.Redis, ns: str,
                                                      data_dir: Path) -> None:
    syms = [f"SYM{i:02d}USDT" for i in range(15)]
    start_manager(syms)
    pids = wait_running(r, ns, syms, timeout=60)
    assert len(set(pids.values())) == 15
    t0 = time.monotonic()
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: all((p := running_pid(r, ns, s)) and p != pids[s] for s in syms), 30, what="all back")
    took = time.monotonic() - t0
    assert took < 15, f"15 engines back in {took:.2f}s"
    for s in syms:
        assert len(engine_pids(s, data_dir)) == 1


def test_manager_sigterm_leaves_no_orphans(start_manager: Start, r: redis.Redis, ns: str) -> None:
    m = start_manager(SYMS)
    wait_running(r, ns, SYMS)
    children = m.descendants()
    assert len(children) >= len(SYMS)
    assert m.stop() == 0
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [], f"orphans: {alive}"


def test_manager_kill9_engines_exit_within_2s(start_manager: Start, r: redis.Redis, ns: str, data_dir: Path) -> None:
    m = start_manager(SYMS)
    pids = wait_running(r, ns, SYMS)
    children = m.descendants()
    os.kill(m.pid, signal.SIGKILL)
    t0 = time.monotonic()
    m.proc.wait()
    wait_for(lambda: all(not engine_pids(s, data_dir) for s in SYMS), 2.0, interval=0.01, what="engines exit")
    assert time.monotonic() - t0 < 2.0
    psutil.wait_procs(children, timeout=3)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                   for p in pids.values())


def test_second_manager_on_same_data_dir_refused(start_manager: Start, r: redis.Redis, ns: str) -> None:
    start_manager(["BTCUSDT"])
    wait_running(r, ns, ["BTCUSDT"])
    second = start_manager(["ETHUSDT"])
    code = second.proc.wait(20)
    _, err = second.output()
    assert code == 2
    assert err.strip().count("\n") == 0 and "another manager" in err and "data dir" in err


def test_symbol_leased_elsewhere_refused_other_symbols_share_redis(
    start_manager: Start, r: redis.Redis, ns: str, tmp_path: Path
) -> None:
    start_manager(["BTCUSDT"])
    wait_running(r, ns, ["BTCUSDT"])
    other_host = tmp_path / "other-host"
    clash = start_manager(["BTCUSDT"], data=other_host)
    assert clash.proc.wait(20) == 2
    _, err = clash.output()
    assert "BTCUSDT is already leased by a live engine elsewhere" in err and err.strip().count("\n") == 0
    assert not other_host.exists(), "a refused start writes nothing (no logs/, no manager.lock)"
    shared = start_manager(["ETHUSDT"], data=other_host)
    wait_running(r, ns, ["BTCUSDT", "ETHUSDT"])
    assert shared.proc.poll() is None


def test_restarted_manager_reconciles(start_manager: Start, r: redis.Redis, ns: str, data_dir: Path) -> None:
    m = start_manager(["BTCUSDT", "ETHUSDT"])
    pids = wait_running(r, ns, ["BTCUSDT", "ETHUSDT"])
    wait_for(lambda: fills(data_dir, "BTCUSDT"), 20, what="fills")
    os.kill(pids["BTCUSDT"], signal.SIGKILL)
    restarted = wait_for(lambda: (p := running_pid(r, ns, "BTCUSDT")) and p != pids["BTCUSDT"] and p, 10,
                         what="restart")
    old = {restarted, pids["ETHUSDT"]}
    os.kill(m.pid, signal.SIGKILL)
    m.proc.wait()
    m2 = start_manager(["BTCUSDT", "ETHUSDT"])
    wait_for(lambda: (p := {s: running_pid(r, ns, s) for s in ("BTCUSDT", "ETHUSDT")})
                   and all(p.values()) and old.isdisjoint(p.values()) and p, 20, what="new engines")
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in old)
    assert state(r, ns, "BTCUSDT")["restarts"] == "1", "restart history carried over"
    for s in ("BTCUSDT", "ETHUSDT"):
        assert len(engine_pids(s, data_dir)) == 1
    assert m2.proc.poll() is None


def test_stale_registry_pid_of_unrelated_process_never_killed(
    start_manager: Start, r: redis.Redis, ns: str, data_dir: Path
) -> None:
    import subprocess

    bystander = subprocess.Popen(["sleep", "300"])
    try:
        data_dir.mkdir(parents=True)
        (data_dir / "engine_registry.json").write_text(
            json.dumps({"BTCUSDT": {"status": "running", "pid": bystander.pid, "uptime": 5}})
        )
        r.hset(f"{ns}engine:BTCUSDT", mapping={"status": "running", "pid": bystander.pid, "started_at": time.time()})
        start_manager(["BTCUSDT"])
        new = wait_running(r, ns, ["BTCUSDT"])["BTCUSDT"]
        assert new != bystander.pid
        time.sleep(0.5)
        assert bystander.poll() is None, "the unrelated process is alive"
    finally:
        bystander.kill()
        bystander.wait()


def test_recorded_pid_with_matching_title_but_other_start_time_is_left_alone(
    start_manager: Start, r: redis.Redis, ns: str, data_dir: Path
) -> None:
    """Even a process titled engine-ETHUSDT is not ours if its start time differs from the record."""
    import subprocess
    import sys

    lookalike = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "engine-ETHUSDT"])
    try:
        wait_for(lambda: "engine-ETHUSDT" in psutil.Process(lookalike.pid).cmdline(), 5, what="lookalike up")
        created = psutil.Process(lookalike.pid).create_time()
        r.hset(f"{ns}engine:ETHUSDT", mapping={"status": "running", "pid": lookalike.pid,
                                               "started_at": created - 3600})
        start_manager(["ETHUSDT"])
        wait_for(lambda: (p := running_pid(r, ns, "ETHUSDT")) and p != lookalike.pid, 20, what="engine up")
        time.sleep(0.5)
        assert lookalike.poll() is None
    finally:
        lookalike.kill()
        lookalike.wait()


def test_corrupt_journal_is_fatal_not_a_crash_loop(
    start_manager: Start, r: redis.Redis, ns: str, data_dir: Path
) -> None:
    (data_dir / "journal").mkdir(parents=True)
    (data_dir / "journal" / "BTCUSDT.jsonl").write_text('{"type":"fill"\nnot json at all\n{"type":"day"}\n')
    start_manager(["BTCUSDT", "ETHUSDT"])
    wait_running(r, ns, ["ETHUSDT"])
    wait_for(lambda: state(r, ns, "BTCUSDT").get("status") == "failed", 10, what="failed")
    st = state(r, ns, "BTCUSDT")
    assert "corrupt" in st["last_error"] and st["restarts"] == "0"
    assert (data_dir / "journal" / "BTCUSDT.jsonl").read_text().count("\n") == 3, "journal left untouched"
