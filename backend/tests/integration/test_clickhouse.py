"""The analytics store end to end (the sprint plan's ``tests/integration/test_clickhouse.py``): engines
trade, the analytics process ships, the CLI counts — embedded (chDB) and against a real
``clickhouse-server``; the shipper and the store killed mid-run lose and duplicate nothing."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis

from backend.tests.clickhouse_server import ClickHouseServer
from backend.tests.conftest import ManagerProc, fast_env, require_binary, wait_for
from backend.tests.integration.helpers import fills, journal_entries, wait_running

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
UNIQUE = {  # the idempotent key of every table: no row twice
    "fills": "symbol, seq", "orders": "symbol, seq", "day_marks": "symbol, seq", "candles": "symbol, ts",
    "equity": "symbol, ts", "predictions": "symbol, ts", "events": "ms, n"}


def cli(data_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backend.src.analytics", "--data-dir", str(data_dir), *args],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def counts(data_dir: Path, env: dict[str, str], table: str = "fills") -> dict[str, int]:
    out = cli(data_dir, env, "sql", f"SELECT symbol, count() FROM {table} GROUP BY symbol")
    assert out.returncode == 0, out.stderr
    return {line.split("\t")[0]: int(line.split("\t")[1]) for line in out.stdout.splitlines()}


def fills_stored(data_dir: Path, env: dict[str, str]) -> int:
    """Fills in the store so far; 0 while the analytics process has not created its database and tables yet
    (ClickHouse's own answer then: the database or the table does not exist)."""
    out = cli(data_dir, env, "sql", "SELECT count() FROM fills")
    if out.returncode != 0 and ("levibot doesn't exist" in out.stderr or "levibot.fills doesn't exist" in out.stderr):
        return 0
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """What the command writes to stderr when stderr is a terminal (a pseudo-terminal here)."""
    master, slave = pty.openpty()
    chunks = []
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a size
        try:
            code = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=slave, timeout=120).returncode
        finally:
            os.close(slave)
        while chunk := _read(master):
            chunks.append(chunk)
    finally:
        os.close(master)
    assert code == 0
    return b"".join(chunks).decode(errors="replace")


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the terminal's other end is closed and drained
        return b""


def journal_counts(data_dir: Path) -> dict[str, int]:
    return {s: len(fills(data_dir, s)) for s in SYMBOLS if fills(data_dir, s)}


def orders_in_journals(data_dir: Path) -> dict[str, int]:
    out = {}
    for s in SYMBOLS:
        n = sum(1 for e in journal_entries(data_dir, s) if e["type"] in ("order", "ack", "reject", "cancel"))
        if n:
            out[s] = n
    return out


def no_duplicates(data_dir: Path, env: dict[str, str]) -> None:
    for table, key in UNIQUE.items():
        out = cli(data_dir, env, "sql", f"SELECT {key}, count() AS c FROM {table} GROUP BY {key} HAVING c > 1 LIMIT 5")
        assert out.returncode == 0 and out.stdout == "", f"{table} has duplicates: {out.stdout}{out.stderr}"


def analytics_proc(m: ManagerProc) -> psutil.Process | None:
    for p in m.descendants():
        try:
            if "backend.src.analytics" in " ".join(p.cmdline()):
                return p
        except psutil.NoSuchProcess:
            continue
    return None


def stop_engines(m: ManagerProc) -> None:
    """The fleet stops trading (the manager stops): the journals are final."""
    assert m.stop() == 0


@pytest.fixture(params=["embedded", "server"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The manager's extra settings: none (chDB under the data dir), or a real server's URL."""
    if request.param == "embedded":
        yield {}
        return
    server = ClickHouseServer(require_binary("clickhouse-server", "clickhouse-server"), tmp_path / "ch").start()
    yield {"clickhouse_url": server.url()}
    server.stop()


def test_exactly_once_through_kills(start_manager: Callable[..., ManagerProc], store_env: dict[str, str],
                                    data_dir: Path, r: redis.Redis, ns: str) -> None:
    m = start_manager(SYMBOLS, analytics_enabled="true", **store_env)
    env = fast_env("", ns, data_dir, **store_env)
    wait_running(r, ns, SYMBOLS)
    if not store_env:
        wait_for(lambda: (data_dir / "clickhouse" / "url").exists(), 30, what="the embedded store served")
    wait_for(lambda: sum(journal_counts(data_dir).values()) >= 20, 30, what="fills")
    # 1. engine fill -> row: a fill in the journal is a row with the same price, within a second or so
    fill = fills(data_dir, "ETHUSDT")[0]
    wait_for(lambda: cli(data_dir, env, "sql", f"SELECT price FROM fills WHERE symbol = 'ETHUSDT' AND "
                                                f"order_id = '{fill['order_id']}'").stdout.strip() != "", 10,
             what="the fill shipped")
    got = cli(data_dir, env, "sql", f"SELECT price, side FROM fills WHERE order_id = '{fill['order_id']}'").stdout
    assert got == f"{fill['price']!r}\t{fill['side']}\n"
    # 2. kill -9 the analytics process (the shipper, and the embedded store with it) three times mid-run
    for _ in range(3):
        proc = analytics_proc(m)
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        wait_for(lambda old=proc.pid: (p := analytics_proc(m)) is not None and p.pid != old, 30,
                 what="the analytics process restarted")
        time.sleep(1.0)
    wait_for(lambda: sum(counts(data_dir, env).values()) > 0, 30, what="the store answering again")
    stop_engines(m)
    # the manager is down: the CLI opens the embedded store itself (or asks the server)
    assert counts(data_dir, env) == journal_counts(data_dir)
    assert counts(data_dir, env, "orders") == orders_in_journals(data_dir)
    no_duplicates(data_dir, env)
    derived = cli(data_dir, env, "sql", "SELECT count() FROM predictions WHERE next_close > 0").stdout
    assert int(derived) > 100, "predictions paired with their outcome"
    events = cli(data_dir, env, "sql", "SELECT count() FROM events WHERE type = 'crashed'").stdout
    assert int(events) == 0  # the analytics process's deaths are not engine events
    # 3. backfill rebuilds the journal tables from the journals: the same counts
    before = counts(data_dir, env)
    out = cli(data_dir, env, "backfill")
    assert out.returncode == 0 and out.stdout.startswith("backfill: "), out.stderr
    assert out.stderr == "", "no progress bar into a pipe or a log"
    assert counts(data_dir, env) == before
    bar = on_a_terminal([sys.executable, "-m", "backend.src.analytics", "--data-dir", str(data_dir), "backfill"], env)
    n = len(list((data_dir / "journal").glob("*.jsonl"))) + 3  # a step per journal, per table inserted
    assert "backfill: 100%" in bar and f"{n}/{n}" in bar, bar
    assert counts(data_dir, env) == before
    # 4. only reads: one line, exit 2, nothing changed
    out = cli(data_dir, env, "sql", "DROP TABLE fills")
    assert (out.returncode, out.stderr) == (2, "analytics: error: sql: only a read query (SELECT ...) is allowed\n")
    out = cli(data_dir, env, "sql", "SELECT 1; DROP TABLE fills")
    assert out.returncode == 2 and counts(data_dir, env) == before


def test_real_server_outage_loses_and_duplicates_nothing(start_manager: Callable[..., ManagerProc],
                                                         r: redis.Redis, ns: str, data_dir: Path,
                                                         tmp_path: Path) -> None:
    server = ClickHouseServer(require_binary("clickhouse-server", "clickhouse-server"), tmp_path / "ch").start()
    try:
        url = server.url()
        m = start_manager(SYMBOLS, analytics_enabled="true", clickhouse_url=url)
        env = fast_env("", ns, data_dir, clickhouse_url=url)
        wait_running(r, ns, SYMBOLS)
        wait_for(lambda: fills_stored(data_dir, env) >= 10, 40, what="fills in the server")
        server.kill()  # the store is down; engines go on trading
        time.sleep(4.0)
        assert not (data_dir / "clickhouse" / "url").exists(), "a server store is not served by us"
        server.start()
        shipped = sum(counts(data_dir, env).values())
        wait_for(lambda: sum(counts(data_dir, env).values()) > shipped + 5, 60, what="shipping again after the outage")
        proc = analytics_proc(m)
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)  # and the shipper killed mid-run
        stop_engines(m)  # the journals keep what the store has not seen yet
        m2 = start_manager(SYMBOLS, analytics_enabled="true", clickhouse_url=url)
        wait_running(r, ns, SYMBOLS)
        time.sleep(2.0)
        stop_engines(m2)  # its analytics process ships the rest, then stops last
        assert counts(data_dir, env) == journal_counts(data_dir)
        assert counts(data_dir, env, "orders") == orders_in_journals(data_dir)
        no_duplicates(data_dir, env)
        logs = "".join(p.read_text() for p in (data_dir / "logs").glob("analytics-*.jsonl"))
        assert server.password not in logs and "nothing lost" in logs
        print(json.dumps({"fills": counts(data_dir, env)}))
    finally:
        server.stop()
