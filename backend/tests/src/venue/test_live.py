"""Real-order path against the local Binance stand-in: signed orders, partial fills, rejects, reconcile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.src.core.config import StrategyConfig, SymbolConfig
from backend.src.core.types import Candle, Signal
from backend.src.engine.journal import FileJournal
from backend.src.market.exchange import make_exchange
from backend.src.trading.trader import Trader
from backend.src.venue.live import LiveVenue
from backend.src.venue.live_orders import client_id
from backend.tests.fakes.binance_server import API_KEY, API_SECRET, BinanceServer

LONG, FLAT = Signal(1.0, 0.7, 0.4, "t"), Signal(0.0, 0.3, 0.4, "t")


def flat_rows() -> list[list[float]]:
    now = int(time.time() * 1000) // 60_000 * 60_000
    return [[now - (50 - i) * 60_000, 100.0, 101.0, 99.0, 100.0, 10.0] for i in range(50)]


@pytest.fixture
def binance() -> Iterator[BinanceServer]:
    server = BinanceServer({"BTCUSDT": flat_rows()}, balances={"USDT": 1500.0, "BTC": 0.0})
    yield server
    server.close()


@pytest.fixture
def ex(binance: BinanceServer):  # type: ignore[no-untyped-def]
    client = make_exchange("binance", base_url=binance.url, api_key=API_KEY, secret=API_SECRET, timeout_s=2)
    client.load_markets()
    return client


def live_trader(tmp_path: Path, ex, **kw: object) -> Trader:  # type: ignore[no-untyped-def]
    cfg = SymbolConfig.model_validate({"strategy": StrategyConfig(), "size_usd": 1000.0, **kw})
    venue = LiveVenue("BTCUSDT", ex, "BTC/USDT", cfg)
    t = Trader("BTCUSDT", cfg, FileJournal(tmp_path / "BTCUSDT.jsonl"), venue, source_id="live:binance")
    t.connect(100.0, gen=1, now=time.time())
    return t


def c(ts: int) -> Candle:
    return Candle(ts, 100.0, 101.0, 99.0, 100.0, 10.0)


def step(t: Trader, ts: int, sig: Signal) -> list:  # type: ignore[type-arg]
    step = t.step(ts, 1, time.time())
    return t.begin_candle(c(ts), step) + t.end_candle(c(ts), sig, step)


def test_market_order_goes_to_the_exchange(binance: BinanceServer, ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = live_trader(tmp_path, ex)
    (fill,) = step(t, 60_000, LONG)
    (order,) = [o for o in binance.orders.values() if o["type"] != "STOP_LOSS_LIMIT"]
    assert order["side"] == "BUY" and order["type"] == "MARKET" and order["clientOrderId"] == client_id(fill.order_id)
    assert fill.qty == pytest.approx(10.0) and fill.price == pytest.approx(100.0)
    assert fill.fee == pytest.approx(1.0), "the exchange's commission, not the config's"
    assert binance.balances["BTC"] == pytest.approx(10.0)
    (sell,) = step(t, 120_000, FLAT)
    assert sell.side == "sell" and binance.balances["BTC"] == pytest.approx(0.0)
    assert [e["type"] for e in t.journal.entries].count("ack") == 2


def test_insufficient_balance_is_a_journaled_reject(binance: BinanceServer, ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = live_trader(tmp_path, ex, size_usd=5000.0)
    assert step(t, 60_000, LONG) == []
    (rej,) = t.journal.of_type("reject")
    assert "InsufficientFunds" in rej["reason"] and t.book.qty == 0 and t.orders == {}


def test_limit_partial_fills_polled(binance: BinanceServer, ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = live_trader(tmp_path, ex, order_type="limit", limit_offset_bps=0)
    binance.partial_limit_fill = 0.3
    (first,) = step(t, 60_000, LONG)  # crosses: 30 % at once
    assert first.qty == pytest.approx(3.0)
    (exchange_id,) = [i for i, o in binance.orders.items() if o["type"] == "LIMIT"]
    binance.fill_more(exchange_id, 5.0)
    (second,) = step(t, 120_000, LONG)
    assert second.qty == pytest.approx(5.0) and t.book.qty == pytest.approx(8.0)
    binance.fill_more(exchange_id, 5.0)
    (third,) = step(t, 180_000, LONG)
    assert third.qty == pytest.approx(2.0) and t.orders == {}


def test_reconcile_adopts_the_exchange_position_and_cancels_leftovers(binance: BinanceServer, ex,  # type: ignore[no-untyped-def]
                                                                      tmp_path: Path) -> None:
    binance.balances["BTC"] = 0.5
    ex.create_order("BTC/USDT", "limit", "buy", 1.0, 50.0)  # a leftover resting order
    t = live_trader(tmp_path, ex)
    assert t.book.qty == pytest.approx(0.5)
    leftover, stop = binance.orders.values()
    assert leftover["status"] == "CANCELED" and leftover["type"] == "LIMIT"
    assert stop["type"] == "STOP_LOSS_LIMIT" and float(stop["origQty"]) == pytest.approx(0.5), "the adopted position"
    (fill,) = t.journal.of_type("fill")
    assert fill["reason"] == "reconcile" and fill["qty"] == pytest.approx(0.5)


def stops(binance: BinanceServer) -> list[dict]:  # type: ignore[type-arg]
    return binance.resting_stops()


def test_a_protective_stop_rests_on_the_exchange_while_a_position_is_open(  # type: ignore[no-untyped-def]
        binance: BinanceServer, ex, tmp_path: Path) -> None:
    t = live_trader(tmp_path, ex, protective_stop_pct=5.0)
    assert stops(binance) == []
    step(t, 60_000, LONG)
    (stop,) = stops(binance)
    assert float(stop["origQty"]) == pytest.approx(10.0) and float(stop["stopPrice"]) == pytest.approx(95.0)
    assert float(stop["price"]) < float(stop["stopPrice"])
    step(t, 120_000, LONG)
    assert [s["orderId"] for s in stops(binance)] == [stop["orderId"]], "unchanged position: the same order"
    (sell,) = step(t, 180_000, FLAT)  # the engine's own sell first lifts the stop (the base is locked)
    assert sell.qty == pytest.approx(10.0) and stops(binance) == []
    kinds = [e["type"] for e in t.journal.entries]
    assert kinds.count("protect") == 1 and kinds.count("unprotect") == 1


def test_the_stop_outlives_a_dead_engine_and_fills_on_the_exchange(  # type: ignore[no-untyped-def]
        binance: BinanceServer, ex, tmp_path: Path) -> None:
    t = live_trader(tmp_path, ex)
    step(t, 60_000, LONG)
    t.journal.close()  # the engine is gone (kill -9): the stop stays on the exchange
    (stop,) = stops(binance)
    binance.candles["BTCUSDT"] = [[r[0], 90.0, 90.0, 90.0, 90.0, 10.0] for r in flat_rows()]  # a crash
    assert ex.fetch_balance()["BTC"]["total"] == pytest.approx(0.0), "the exchange sold the position"
    assert binance.orders[stop["orderId"]]["status"] == "FILLED"
    t2 = live_trader(tmp_path, ex)  # a restarted engine reconciles: flat, no stop needed
    assert t2.book.qty == pytest.approx(0.0, abs=1e-9) and stops(binance) == []


def test_a_triggered_stop_is_journaled_by_the_running_engine(  # type: ignore[no-untyped-def]
        binance: BinanceServer, ex, tmp_path: Path) -> None:
    t = live_trader(tmp_path, ex)
    step(t, 60_000, LONG)
    binance.candles["BTCUSDT"] = [[r[0], 90.0, 90.0, 90.0, 90.0, 10.0] for r in flat_rows()]
    step(t, 120_000, LONG)
    (fill,) = [f for f in t.journal.of_type("fill") if f.get("reason") == "stop_loss"]
    assert fill["qty"] == pytest.approx(10.0) and t.book.qty == pytest.approx(0.0)
