from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
from pathlib import Path

import pytest

from backend.src.core.errors import JournalError
from backend.src.engine.journal import FileJournal


def test_append_is_durable_and_reloads(tmp_path: Path) -> None:
    j = FileJournal(tmp_path / "BTCUSDT.jsonl")
    j.append({"type": "fill", "qty": 1.0}, gen=3)
    j.append({"type": "day", "equity": 5.0}, gen=3)
    j.close()
    j2 = FileJournal(tmp_path / "BTCUSDT.jsonl")
    assert [e["seq"] for e in j2.entries] == [1, 2] and j2.max_gen == 3
    assert j2.of_type("fill")[0]["qty"] == 1.0


def test_torn_final_line_is_cut_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "X.jsonl"
    path.write_text('{"type":"fill","seq":1,"gen":1}\n{"type":"fill","se')
    j = FileJournal(path)
    assert len(j.entries) == 1
    warned = [r for r in caplog.records if r.levelname == "WARNING" and "torn" in r.getMessage()]
    assert len(warned) == 1 and "18 bytes" in warned[0].getMessage()
    j.append({"type": "fill"}, gen=1)
    j.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(x)["type"] == "fill" for x in lines)


def test_corrupt_middle_line_is_fatal_and_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "X.jsonl"
    original = '{"type":"fill"}\ngarbage\n{"type":"fill"}\n'
    path.write_text(original)
    with pytest.raises(JournalError, match="line 2 is corrupt"):
        FileJournal(path)
    assert path.read_text() == original


def test_fencing_refuses_older_generation(tmp_path: Path) -> None:
    j = FileJournal(tmp_path / "X.jsonl")
    j.append({"type": "fill"}, gen=5)
    with pytest.raises(JournalError, match="fenced off"):
        j.append({"type": "fill"}, gen=4)
    assert len(j.entries) == 1


def _hold(path: str, ready: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    FileJournal(Path(path))
    ready.set()
    signal.pause()


def test_second_process_cannot_open_a_held_journal_until_holder_dies(tmp_path: Path) -> None:
    path = tmp_path / "X.jsonl"
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(path), ready))
    holder.start()
    assert ready.wait(10)
    with pytest.raises(JournalError, match="locked by another live engine"):
        FileJournal(path, lock_wait_s=0.2)
    os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
    holder.join()
    FileJournal(path, lock_wait_s=2).close()  # the kernel released the lock


def _writer(path: str, n: int) -> None:
    j = FileJournal(Path(path), lock_wait_s=30)
    for i in range(n):
        j.append({"type": "fill", "i": i}, gen=1)
    os.kill(os.getpid(), signal.SIGKILL)  # die mid-life, lock released by the kernel


def test_kill9_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    path = tmp_path / "X.jsonl"
    ctx = mp.get_context("fork")
    for _ in range(3):
        p = ctx.Process(target=_writer, args=(str(path), 50))
        p.start()
        p.join()
        assert p.exitcode == -signal.SIGKILL
    j = FileJournal(path)
    assert len(j.entries) == 150 and [e["seq"] for e in j.entries] == list(range(1, 151))
