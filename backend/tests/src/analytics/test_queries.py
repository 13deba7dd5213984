"""The history queries on rows whose answers are known: the same SQL on the embedded store (chDB in this
process) and on a real ``clickhouse-server``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from backend.src.analytics import queries, schema
from backend.src.analytics.server import StoreServer, is_read, new_password
from backend.src.analytics.store import ChdbStore, HttpStore, Store, StoreError, insert, quote, rows
from backend.tests.clickhouse_server import ClickHouseServer
from backend.tests.conftest import require_binary

DAY = 86_400_000
T0 = queries.ms(dt.date(2026, 11, 23))  # a Monday


@pytest.fixture(scope="module", params=["chdb", "server"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    server: ClickHouseServer | None = None
    s: Store
    if request.param == "chdb":
        s = ChdbStore(tmp_path_factory.mktemp("ch") / "db")
    else:
        server = ClickHouseServer(require_binary("clickhouse-server", "clickhouse-server"),
                                  tmp_path_factory.mktemp("chs")).start()
        s = HttpStore(server.url())
        s.ensure_database()
    assert schema.migrate(s) == [1, 2] and schema.migrate(s) == [], "applied once"
    marks = [("BTCUSDT", 1, "2026-11-23", 10_000.0), ("BTCUSDT", 2, "2026-11-24", 10_100.0),
             ("BTCUSDT", 3, "2026-11-25", 10_050.0), ("BTCUSDT", 4, "2026-11-30", 10_300.0),
             ("ETHUSDT", 1, "2026-11-24", 5_000.0)]
    insert(s, "day_marks", [{"symbol": sym, "seq": seq, "gen": 1, "day": d, "equity": eq, "price": 1.0}
                            for sym, seq, d, eq in marks])
    candles = [("BTCUSDT", T0 + 7 * DAY + 3600_000, 10_340.0, 0.8, 100.0, 101.0),
               ("ETHUSDT", T0 + DAY + 60_000, 4_990.0, 0.2, 50.0, 49.0)]
    insert(s, "candles", [{"symbol": sym, "ts": ts, "open": 1.0, "high": 1.0, "low": 1.0, "close": c, "volume": 1.0,
                           "position": 0.0, "equity": eq, "at": 0.0, "prob_up": p, "confidence": 0.5, "model": "m1"}
                          for sym, ts, eq, p, c, _ in candles])
    preds = [{"symbol": "BTCUSDT", "ts": T0 + i * 60_000, "prob_up": p, "confidence": 0.5, "model": "m1",
              "close": 100.0, "next_close": 100.0 + up} for i, (p, up) in enumerate(
                  [(0.05, -1), (0.15, -1), (0.15, 1), (0.95, 1), (1.0, 1)])]
    insert(s, "predictions", preds)
    insert(s, "fills", [{"symbol": "BTCUSDT" if i % 2 else "ETHUSDT", "seq": i, "gen": 1, "ts": T0 + i * 1000,
                         "at": 0.0, "order_id": f"o{i}", "side": "buy", "qty": 1.0, "price": 100.0 + i, "fee": 0.1,
                         "liquidity": "taker", "reason": "liquidation" if i == 24 else "", "source": "synthetic"}
                        for i in range(25)])
    insert(s, "funding", [{"symbol": "ETHUSDT", "seq": 100 + i, "gen": 1, "ts": T0 + i * 8 * 3600_000, "at": 0.0,
                           "rate": 0.0001, "qty": -2.0, "price": 100.0, "amount": 0.02} for i in range(3)])
    incidents = [(T0 + i * 3600_000, kind) for i, kind in enumerate(["crashed", "recovered", "crashed", "global_stop"])]
    insert(s, "events", [{"ms": at, "n": 0, "type": kind, "symbol": "SOLUSDT", "reason": "", "fields": "{}"}
                         for at, kind in [*incidents, (T0 + 8 * DAY, "hung")]])
    insert(s, "equity", [{"symbol": "BTCUSDT", "ts": T0 + m * 60_000, "equity": 10_000.0 + m, "position": 0.0}
                         for m in range(120)])
    yield s
    s.close()
    if server is not None:
        server.stop()


def test_pnl_per_day_and_week_from_day_openings(store: Store) -> None:
    got = queries.pnl(store, dt.date(2026, 11, 23), dt.date(2026, 11, 30))
    btc = {r["period"]: r["pnl"] for r in got if r["symbol"] == "BTCUSDT"}
    # next opening − opening; the 25th runs to the 30th's opening (no marks between); the 30th to the latest equity
    assert btc == {"2026-11-23": 100.0, "2026-11-24": -50.0, "2026-11-25": 250.0, "2026-11-30": 40.0}
    assert [r["pnl"] for r in got if r["symbol"] == "ETHUSDT"] == [-10.0]
    weeks = queries.pnl(store, dt.date(2026, 11, 23), dt.date(2026, 11, 30), by="week", symbol="BTCUSDT")
    assert [(r["period"], r["pnl"]) for r in weeks] == [("2026-11-23", 300.0), ("2026-11-30", 40.0)]
    assert queries.pnl(store, dt.date(2026, 11, 24), dt.date(2026, 11, 24), symbol="BTCUSDT")[0]["pnl"] == -50.0


def test_fills_paginated_crashes_calibration_equity(store: Store) -> None:
    page = queries.fills(store, "BTCUSDT", T0, T0 + DAY, limit=5, offset=10)
    assert page["total"] == 12 and [f["seq"] for f in page["fills"]] == [21, 23]
    assert queries.fills(store, None, T0, T0 + DAY, 100, 0)["total"] == 25
    assert queries.crashes(store, T0, T0 + DAY) == [{"symbol": "SOLUSDT", "period": "2026-11-23", "crashed": 2,
                                                     "hung": 0, "failed": 0, "recovered": 1, "stalled": 0}]
    assert [r["hung"] for r in queries.crashes(store, T0, T0 + 14 * DAY, by="week")] == [0, 1]
    cal = queries.calibration(store, T0, T0 + DAY, bins=10)
    assert [(c["bin"], c["n"], c["realised"]) for c in cal] == [([0.0, 0.1], 1, 0.0), ([0.1, 0.2], 2, 0.5),
                                                                ([0.9, 1.0], 2, 1.0)], "P(up) = 1 is in the top bin"
    curve = queries.equity(store, "BTCUSDT", T0, T0 + 2 * 3600_000, points=12)
    assert len(curve) == 12 and curve[0]["equity"] == 10_009.0 and curve[-1]["equity"] == 10_119.0


def test_funding_and_liquidations_per_symbol(store: Store) -> None:
    got = queries.perpetual(store, T0, T0 + DAY)
    assert got == [{"symbol": "ETHUSDT", "funding": pytest.approx(0.06), "payments": 3, "liquidations": 1}]
    assert queries.perpetual(store, T0 + 2 * DAY, T0 + 3 * DAY) == []


def test_sql_guards_and_errors(store: Store) -> None:
    assert is_read("SELECT 1") and is_read(" with x as (select 1) select * from x;")
    assert not is_read("SELECT 1; DROP TABLE fills") and not is_read("INSERT INTO fills VALUES") and not is_read("")
    assert quote("it's") == "'it\\'s'"
    assert rows(store, f"SELECT {quote(chr(39) + ' OR 1')} AS s") == [{"s": "' OR 1"}]
    with pytest.raises(StoreError, match="UNKNOWN_TABLE|Unknown table|doesn't exist"):
        store.execute("SELECT * FROM nope")


def test_over_http_reads_only_when_asked(store: Store) -> None:
    """The embedded store served over ClickHouse's HTTP interface, or the server itself: ``readonly``
    refuses a write, an error is a StoreError with the server's text, and nothing changed."""
    server = StoreServer(store, new_password()).start() if isinstance(store, ChdbStore) else None
    client = HttpStore(server.url) if server is not None else store
    try:
        assert rows(client, "SELECT count() AS n FROM fills") == [{"n": 25}]
        with pytest.raises(StoreError, match="readonly|READONLY"):
            client.execute("DROP TABLE fills", readonly=True)
        with pytest.raises(StoreError, match="Unknown table|UNKNOWN_TABLE|doesn't exist"):
            client.execute("SELECT * FROM nope")
        assert rows(client, "SELECT count() AS n FROM fills") == [{"n": 25}]
    finally:
        if server is not None:
            client.close()
            server.stop()
    if server is not None:
        with pytest.raises(StoreError, match="unreachable"):
            HttpStore(server.url, timeout_s=1).execute("SELECT 1")


def test_a_funding_entry_ships_to_its_table() -> None:
    from backend.src.analytics.shipper import journal_row  # noqa: PLC0415

    e = {"type": "funding", "seq": 7, "gen": 2, "candle_ts": T0, "ts": 1.5, "rate": -0.0002, "qty": 0.5,
         "price": 100.0, "amount": 0.01, "source": "replay:x.csv"}
    assert journal_row("SOLUSDT", e) == ("funding", {"symbol": "SOLUSDT", "seq": 7, "gen": 2, "ts": T0, "at": 1.5,
                                                     "rate": -0.0002, "qty": 0.5, "price": 100.0, "amount": 0.01})
