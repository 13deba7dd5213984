"""Helpers for tests that drive the real manager CLI and its engine processes."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from backend.src.trading.book import PositionBook
from backend.tests.conftest import wait_for


def state(r: redis.Redis, ns: str, symbol: str) -> dict[str, str]:
    return r.hgetall(f"{ns}engine:{symbol}")  # type: ignore[return-value]


def heartbeat_pid(r: redis.Redis, ns: str, symbol: str) -> int | None:
    v = r.get(f"{ns}hb:{symbol}")
    return int(str(v).split(":")[0]) if v else None


def running_pid(r: redis.Redis, ns: str, symbol: str) -> int | None:
    """The engine's pid once it is running and its own heartbeat is in Redis."""
    st = state(r, ns, symbol)
    if st.get("status") != "running" or not st.get("pid"):
        return None
    pid = int(st["pid"])
    return pid if heartbeat_pid(r, ns, symbol) == pid else None


def wait_running(r: redis.Redis, ns: str, symbols: list[str], timeout: float = 60.0) -> dict[str, int]:
    """Every symbol's engine running (a readiness wait: a manager starting beside three busy test workers on
    two cores can take half a minute; what a test measures, it measures with its own bounds)."""
    def all_up() -> dict[str, int] | None:
        pids = {s: running_pid(r, ns, s) for s in symbols}
        return pids if all(pids.values()) else None  # type: ignore[return-value]

    return wait_for(all_up, timeout, what=f"{symbols} running")  # type: ignore[return-value]


def journal_entries(data_dir: Path, symbol: str) -> list[dict[str, object]]:
    path = data_dir / "journal" / f"{symbol}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def journal_position(data_dir: Path, symbol: str) -> float:
    b = PositionBook(symbol, initial_equity=10_000)
    b.rebuild(journal_entries(data_dir, symbol))  # type: ignore[arg-type]
    return b.qty


def fills(data_dir: Path, symbol: str) -> list[dict[str, object]]:
    return [e for e in journal_entries(data_dir, symbol) if e["type"] == "fill"]


def events(r: redis.Redis, ns: str, kind: str | None = None, symbol: str | None = None) -> list[dict[str, str]]:
    out = [f for _, f in r.xrange(f"{ns}events")]  # type: ignore[misc]
    return [e for e in out if (kind is None or e["type"] == kind) and (symbol is None or e["symbol"] == symbol)]


def backtest_full(candles: Path, config: Path, out: Path, env: dict[str, str], *, timeout: float = 900) -> Path:
    """``python -m backend.ml.research.backtest --full`` over every file in ``candles`` with the engines'
    config, as a user runs it: what an engine replaying those files must have journaled. Returns ``out``."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from backend.src.core.settings import REPO_ROOT  # noqa: PLC0415

    res = subprocess.run([sys.executable, "-m", "backend.ml.research.backtest", "--ohlcv-dir", str(candles),
                          "--pattern", "*.csv", "--full", "--engine-config", str(config), "--out", str(out)],
                         env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-2000:]
    return out


def replay_all(manager: object, r: redis.Redis, ns: str, symbols: list[str], *, timeout: float = 400) -> None:
    """Wait for every engine of ``manager`` to run its replay to the end without a restart, then stop it."""
    try:
        wait_running(r, ns, symbols, timeout=120)
        wait_for(lambda: all(state(r, ns, s).get("exhausted") == "1" for s in symbols), timeout, interval=0.5,
                 what="every replay finished")
        assert {s: state(r, ns, s).get("restarts") for s in symbols} == dict.fromkeys(symbols, "0")
    finally:
        assert manager.stop() == 0  # type: ignore[attr-defined]
