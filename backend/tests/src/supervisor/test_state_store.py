from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
from pathlib import Path

import pytest
import redis

from backend.src.core.fsio import write_json_atomic
from backend.src.core.keys import Keys
from backend.src.core.redis_url import connect
from backend.src.supervisor.state_store import StateStore, read_registry, registry_entry


def test_registry_entry_in_the_seed_shape() -> None:
    st = {"status": "running", "pid": "12345", "started_at": "1000", "last_trade": "2024-01-01T00:00:00Z",
          "pnl": "150.004", "restarts": "2", "last_error": "killed by SIGKILL", "position": "0.5"}
    e = registry_entry(st, now=4600)
    assert e == {"status": "running", "pid": 12345, "uptime": 3600, "last_trade": "2024-01-01T00:00:00Z",
                 "pnl": 150.0, "position": 0.5, "restarts": 2, "last_error": "killed by SIGKILL",
                 "started_at": 1000.0}
    assert registry_entry({"status": "stopped", "pid": "1"}, now=1)["pid"] is None


def _rewrite_forever(path: str) -> None:
    i = 0
    while True:
        write_json_atomic(Path(path), {"n": i, "pad": "x" * 10_000})
        i += 1


def test_atomic_write_never_leaves_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "engine_registry.json"
    write_json_atomic(path, {"n": -1})
    ctx = mp.get_context("fork")
    p = ctx.Process(target=_rewrite_forever, args=(str(path),))
    p.start()
    seen = 0
    for _ in range(300):
        seen += json.loads(path.read_text())["n"] >= -1
    os.kill(p.pid, signal.SIGKILL)  # type: ignore[arg-type]
    p.join()
    assert seen == 300
    assert isinstance(read_registry(path), dict)
    assert read_registry(tmp_path / "missing.json") == {}


def test_writes_buffer_while_redis_is_down_and_flush_after(r: redis.Redis, ns: str) -> None:
    down = StateStore(connect("redis://127.0.0.1:1/0"), Keys(ns))
    down.write("BTCUSDT", status="crashed", restarts=1)
    down.event("crashed", "BTCUSDT", reason="x")
    down.recovery(0.12)
    assert not down.redis_ok and down.pending["BTCUSDT"]["status"] == "crashed"
    down.r = r  # Redis is back
    assert down.flush()
    assert r.hgetall(f"{ns}engine:BTCUSDT") == {"status": "crashed", "restarts": "1"}
    assert r.xlen(f"{ns}events") == 1 and r.lrange(f"{ns}watchdog:recoveries", 0, -1) == ["0.120000"]
    assert down.redis_ok and not down.pending


def test_a_corrupt_registry_is_ignored_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "engine_registry.json"
    path.write_text('{"BTCUSDT": {"status": "run')
    assert read_registry(path) == {}
    path.write_text("[1, 2]")
    assert read_registry(path) == {}
    assert read_registry(tmp_path / "missing.json") == {}
    warned = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 2 and all(str(path) in r.getMessage() for r in warned)


def test_a_state_and_the_event_it_announces_are_one_transaction(r: redis.Redis, ns: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that sees ``failed`` also sees the ``failed`` event (a test read the status, then found no
    event, when the two were separate writes)."""
    store, keys = StateStore(r, Keys(ns)), Keys(ns)
    executed: list[list[object]] = []
    real = r.pipeline

    def pipeline(transaction: bool = True) -> redis.client.Pipeline:
        pipe = real(transaction=transaction)
        run = pipe.execute

        def execute(raise_on_error: bool = True) -> list[object]:
            executed.append([cmd[0][0] for cmd in pipe.command_stack])
            return run(raise_on_error)
        pipe.execute = execute  # type: ignore[method-assign]
        return pipe

    monkeypatch.setattr(r, "pipeline", pipeline)
    store.write("BTCUSDT", event=("failed", {"position": "0.5"}), status="failed", on_failed="flattening")
    assert executed == [["HSET", "SADD", "XADD"]], "one MULTI/EXEC: the state and its event"
    assert r.hget(keys.state("BTCUSDT"), "status") == "failed"
    (_, ev), = r.xrange(keys.events)
    assert ev["type"] == "failed" and ev["position"] == "0.5"
