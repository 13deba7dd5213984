"""The engine's dashboard history: streams in Redis, the candle record in sessions, bounded on disk."""

from __future__ import annotations

from pathlib import Path

import redis

from backend.src.core.keys import Keys
from backend.src.core.types import Candle
from backend.src.engine.history import History
from backend.src.market import candle_log
from backend.src.venue.orders import Fill


def candles(n: int, start: int = 0) -> list[Candle]:
    return [Candle((start + i) * 60_000, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 10.0) for i in range(n)]


def test_streams_and_sessions(r: redis.Redis, ns: str, tmp_path: Path) -> None:
    keys = Keys(ns)
    path = tmp_path / "candles" / "BTCUSDT.csv"
    h = History(r, keys, "BTCUSDT", path, maxlen=100)
    h.session(7, candles(3), fresh=True)
    traded = candles(5, start=3)
    for c in traded:
        h.candle(c, 1.5, 10_000.0, 1.7e9)
    h.fills([Fill("o1", "buy", 1.5, 104.0, 0.1, traded[0].ts, 1.7e9)], 1.5)
    assert r.xlen(keys.history("BTCUSDT")) == 0  # buffered until the heartbeat
    h.flush(9, 3)
    rows = r.xrange(keys.history("BTCUSDT"))
    assert [int(f["ts"]) for _, f in rows] == [c.ts for c in traded] and rows[-1][1]["pos"] == "1.5"
    assert r.xrange(keys.fills("BTCUSDT"))[0][1]["order_id"] == "o1"
    h.session(9, h.last(2))  # a config change: a second session, warmed on the recent candles
    h.candle(candles(1, start=8)[0], 0.0, 10_001.0, 1.7e9)
    h.flush(9, 3)
    sessions = candle_log.read(path)
    assert [(s.seq, len(s.warmup), len(s.traded)) for s in sessions] == [(7, 3, 5), (9, 2, 1)]
    assert sessions[0].traded == traded and sessions[1].warmup == traded[-2:]
    with path.open("a") as fh:
        fh.write("123,1.0,2")  # a torn tail is skipped
    assert len(candle_log.read(path)[-1].traded) == 1


def test_the_candle_record_rolls_over_and_stays_bounded(r: redis.Redis, ns: str, tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT.csv"
    h = History(r, Keys(ns), "BTCUSDT", path, maxlen=50, max_file_bytes=4_000)
    h.session(1, [], fresh=True)
    for i, c in enumerate(candles(500)):
        h.candle(c, 0.0, 10_000.0, 1.7e9)
        if i % 10 == 9:
            h.flush(100 + i, 20)
    assert path.stat().st_size < 4_000 + 2_000
    sessions = candle_log.read(path)
    assert len(sessions) == 1 and len(sessions[0].warmup) == 20  # rolled over: warmed on the last 20 candles
    assert sessions[0].traded[-1].ts == 499 * 60_000
    assert sessions[0].warmup[-1].ts < sessions[0].traded[0].ts
    restarted = History(r, Keys(ns), "BTCUSDT", path, maxlen=50)
    restarted.session(600, candles(2), why="start")  # a restart appends a session (the attribution reads them all)
    restarted.flush(600, 20)
    after = candle_log.read(path)
    assert [(s.seq, s.why, len(s.warmup), len(s.traded)) for s in after][-1] == (600, "start", 2, 0)
    assert len(after) == 2 and after[0].traded[-1].ts == 499 * 60_000
