"""The journal's copy in Redis: fenced, exactly once, restored on another host, kept through an outage."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from backend.src.core.errors import LeaseError, RedisUnavailable
from backend.src.core.keys import Keys
from backend.src.core.lease import Lease
from backend.src.core.redis_url import connect
from backend.src.engine.journal import FileJournal
from backend.src.engine.journal_stream import JournalStream, StreamAhead


def stream_for(r: redis.Redis, ns: str, owner: str, *, min_gen: int = 0) -> JournalStream:
    keys = Keys(ns)
    lease = Lease(r, keys, "BTCUSDT", owner, 1, 10.0)
    lease.acquire(min_generation=min_gen)
    return JournalStream(r, keys, "BTCUSDT", lease)


def host(tmp_path: Path, name: str, s: JournalStream) -> FileJournal:
    j = s.restore(FileJournal(tmp_path / name / "BTCUSDT.jsonl"))
    j.on_append = s.append
    return j


def test_entries_reach_the_stream_in_order_and_once(r: redis.Redis, ns: str, tmp_path: Path) -> None:
    s = stream_for(r, ns, "a")
    j = host(tmp_path, "a", s)
    for i in range(3):
        j.append({"type": "fill", "qty": float(i)}, gen=s.lease.generation)
    s.pending = list(j.entries)  # a retry of everything (a timeout whose write did land): skipped, not refused
    s.flush()
    assert s.pending == [] and not s.warned
    assert s.read() == j.entries
    assert [i for i, _ in s.xrange("-")] == ["1-1", "2-1", "3-1"]


def test_a_takeover_rebuilds_the_journal_and_fences_the_old_engine(r: redis.Redis, ns: str, tmp_path: Path) -> None:
    old = stream_for(r, ns, "host-a")
    ja = host(tmp_path, "a", old)
    ja.append({"type": "fill", "side": "buy", "qty": 2.0}, gen=old.lease.generation)
    ja.append({"type": "day", "equity": 10.0}, gen=old.lease.generation)
    r.delete(Keys(ns).lease("BTCUSDT"))  # host a died: its lease lapsed
    new = stream_for(r, ns, "host-b")
    jb = host(tmp_path, "b", new)
    new.after_lease(jb)
    assert jb.entries == ja.entries and jb.seq == 2
    assert (tmp_path / "b" / "BTCUSDT.jsonl").read_text() == \
        (tmp_path / "a" / "BTCUSDT.jsonl").read_text()
    with pytest.raises(LeaseError):  # the old engine cannot add a line any more
        ja.append({"type": "fill", "side": "sell", "qty": 2.0}, gen=old.lease.generation)
    jb.append({"type": "fill", "side": "sell", "qty": 2.0}, gen=new.lease.generation)
    assert [e["seq"] for e in new.read()] == [1, 2, 3] and new.read()[2]["gen"] == new.lease.generation


def test_the_newer_generation_wins_where_they_differ(r: redis.Redis, ns: str, tmp_path: Path) -> None:
    a = stream_for(r, ns, "host-a")
    ja = host(tmp_path, "a", a)
    ja.append({"type": "fill", "qty": 1.0}, gen=a.lease.generation)
    # host a wrote seq 2 while Redis was away and died; host b took over from seq 1
    ja.on_append = None
    ja.append({"type": "fill", "qty": 99.0}, gen=a.lease.generation)
    r.delete(Keys(ns).lease("BTCUSDT"))
    b = stream_for(r, ns, "host-b")
    jb = host(tmp_path, "b", b)
    jb.append({"type": "fill", "qty": 5.0}, gen=b.lease.generation)
    ja.close()
    # host a comes back and takes the symbol again: the stream (newer generation) wins; its file is kept aside
    r.delete(Keys(ns).lease("BTCUSDT"))
    a2 = stream_for(r, ns, "host-a")
    ja2 = host(tmp_path, "a", a2)
    assert [e["qty"] for e in ja2.entries] == [1.0, 5.0]
    assert list((tmp_path / "a").glob("BTCUSDT.jsonl.superseded-*"))


def test_entries_written_during_an_outage_are_sent_later(r: redis.Redis, ns: str, tmp_path: Path) -> None:
    s = stream_for(r, ns, "a")
    j = host(tmp_path, "a", s)
    real = s.r
    s.r = connect("redis://127.0.0.1:1/0", timeout=0.2)  # nothing listens there
    j.append({"type": "fill", "qty": 1.0}, gen=s.lease.generation)
    j.append({"type": "fill", "qty": 2.0}, gen=s.lease.generation)
    assert len(s.pending) == 2 and s.warned
    s.r = real
    s.flush()
    assert s.pending == [] and s.read() == j.entries


def test_a_stream_that_moved_on_after_the_restore_is_refused(r: redis.Redis, ns: str, tmp_path: Path) -> None:
    s = stream_for(r, ns, "a")
    j = host(tmp_path, "a", s)
    r.xadd(Keys(ns).journal("BTCUSDT"), {"e": '{"seq":1,"gen":1,"type":"fill"}'}, id="1-1")
    with pytest.raises(StreamAhead):
        s.after_lease(j)


def test_a_restart_reads_only_what_follows_the_local_journal(r: redis.Redis, ns: str, tmp_path: Path) -> None:
    s = stream_for(r, ns, "a")
    j = host(tmp_path, "a", s)
    for i in range(5):
        j.append({"type": "fill", "qty": float(i)}, gen=s.lease.generation)
    j.close()
    again = JournalStream(r, Keys(ns), "BTCUSDT", s.lease)
    starts: list[str] = []
    real = again.read
    again.read = lambda start="-": starts.append(start) or real(start)  # type: ignore[method-assign]
    j2 = again.restore(FileJournal(tmp_path / "a" / "BTCUSDT.jsonl"))
    assert starts == ["(5-1"] and len(j2.entries) == 5 and again.restored_seq == 5


def test_no_stream_no_start(ns: str, tmp_path: Path) -> None:
    """An engine that cannot read the stream may hold a stale journal: it does not start (and retries later)."""
    dead = connect("redis://127.0.0.1:1/0", timeout=0.1)
    s = JournalStream(dead, Keys(ns), "BTCUSDT", Lease(dead, Keys(ns), "BTCUSDT", "a", 1, 10.0))
    j = FileJournal(tmp_path / "BTCUSDT.jsonl")
    with pytest.raises(RedisUnavailable):
        s.restore(j, wait_s=0.3)
    FileJournal(tmp_path / "BTCUSDT.jsonl").close()  # the failed start let go of the file


def test_a_newer_local_history_replaces_an_older_stream(r: redis.Redis, ns: str, tmp_path: Path) -> None:
    """The stream lost the newer generation's entries (e.g. a Redis restored from an old copy) and holds an
    older one's: the local file, newer, is written to the stream anew."""
    keys = Keys(ns)
    for seq, gen, qty in ((1, 1, 1.0), (2, 1, 2.0)):  # the older generation's history
        r.xadd(keys.journal("BTCUSDT"), {"e": f'{{"seq":{seq},"gen":{gen},"type":"fill","qty":{qty}}}'}, id=f"{seq}-1")
    path = tmp_path / "BTCUSDT.jsonl"
    path.write_text('{"seq":1,"gen":1,"type":"fill","qty":1.0}\n{"seq":2,"gen":4,"type":"fill","qty":9.0}\n'
                    '{"seq":3,"gen":4,"type":"fill","qty":8.0}\n')
    s = stream_for(r, ns, "a", min_gen=5)
    j = s.restore(FileJournal(path))
    assert [e["qty"] for e in j.entries] == [1.0, 9.0, 8.0]
    s.after_lease(j)
    assert s.read() == j.entries and s.pending == []
