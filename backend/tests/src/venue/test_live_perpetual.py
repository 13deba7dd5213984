"""The live perpetual path against the local Binance USDT-M stand-in: margin mode and leverage set first,
the exchange's brackets, shorts and reduce-only turns, the closePosition stop on either side, funding
income, the exchange's liquidation, positions (not balances) reconciled, and Binance's error codes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.src.core.config import StrategyConfig, SymbolConfig
from backend.src.core.errors import UsageError
from backend.src.core.types import Candle, Signal
from backend.src.engine.journal import FileJournal
from backend.src.market.exchange import make_exchange
from backend.src.trading.trader import Trader
from backend.src.venue.live import LiveVenue
from backend.src.venue.orders import Order
from backend.tests.fakes.binance_futures import BinanceFuturesServer
from backend.tests.fakes.binance_server import API_KEY, API_SECRET

LONG, SHORT, FLAT = Signal(1.0, 0.7, 0.4, "t"), Signal(-1.0, 0.3, 0.4, "t"), Signal(0.0, 0.5, 0.0, "t")
MARKET = "BTC/USDT:USDT"


def rows(price: float) -> list[list[float]]:
    now = int(time.time() * 1000) // 60_000 * 60_000
    return [[now - (50 - i) * 60_000, price, price, price, price, 10.0] for i in range(51)]


@pytest.fixture
def fapi() -> Iterator[BinanceFuturesServer]:
    server = BinanceFuturesServer({"BTCUSDT": rows(20_000.0)}, wallet=2_000.0)
    yield server
    server.close()


@pytest.fixture
def ex(fapi: BinanceFuturesServer):  # type: ignore[no-untyped-def]
    # no client-side throttle: the income endpoint weighs 30 (1.5 s at ccxt's pace), the stand-in has no limit
    client = make_exchange("binance", base_url=fapi.url, api_key=API_KEY, secret=API_SECRET, timeout_s=2,
                           rate_limit=False)
    client.load_markets()
    return client


def trader(tmp_path: Path, ex, **kw: object) -> Trader:  # type: ignore[no-untyped-def]
    cfg = SymbolConfig.model_validate({"strategy": StrategyConfig(), "size_usd": 2000.0, "max_position_usd": 2000.0,
                                       "market": "perpetual", "leverage": 5, "protective_stop_pct": 5.0, **kw})
    t = Trader("BTCUSDT", cfg, FileJournal(tmp_path / "BTCUSDT.jsonl"), LiveVenue("BTCUSDT", ex, MARKET, cfg),
               source_id="live:binance")
    t.connect(20_000.0, gen=1, now=time.time())
    return t


def c(ts: int, price: float = 20_000.0) -> Candle:
    return Candle(ts, price, price, price, price, 10.0)


def run(t: Trader, candle: Candle, sig: Signal) -> list:  # type: ignore[type-arg]
    step = t.step(candle.ts, 1, time.time())
    return t.begin_candle(candle, step) + t.end_candle(candle, sig, step)


def paths(fapi: BinanceFuturesServer, method: str, path: str) -> int:
    return sum(1 for m, p in fapi.requests if (m, p) == (method, path))


def test_margin_and_leverage_are_set_first_and_the_exchange_brackets_rule(
        fapi: BinanceFuturesServer, ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = trader(tmp_path, ex)
    run(t, c(60_000), SHORT)
    first_order = next(i for i, (m, p) in enumerate(fapi.requests) if p in ("/fapi/v1/order", "/fapi/v1/algoOrder"))
    setup = [p for _m, p in fapi.requests[:first_order]]
    assert "/fapi/v1/marginType" in setup and "/fapi/v1/leverage" in setup
    assert fapi.margin_type["BTCUSDT"] == "ISOLATED" and fapi.leverage["BTCUSDT"] == 5
    assert t.margin is not None and t.margin.brackets.tiers[0].mmr == 0.005  # the exchange's, not the defaults'
    t.journal.close()  # type: ignore[attr-defined]
    trader(tmp_path, ex)  # again: -4046 "no need to change margin type" is no error


def test_leverage_the_exchange_refuses_is_one_line_naming_the_field(ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=r"^leverage: the exchange refuses 100x for BTC/USDT:USDT: .*-4028"):
        trader(tmp_path, ex, leverage=100)


def test_a_short_turns_long_through_a_reduce_only_close(fapi: BinanceFuturesServer, ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = trader(tmp_path, ex)
    (sell,) = run(t, c(60_000), SHORT)
    assert sell.side == "sell" and sell.qty == pytest.approx(0.1) and fapi.position["BTCUSDT"][0] == -0.1
    assert sell.fee == pytest.approx(0.1 * 20_000 * 0.0004), "the commission of the account's trades"
    (algo,) = [a for a in fapi.algos.values() if a["algoStatus"] == "NEW"]
    assert algo["side"] == "BUY" and float(algo["triggerPrice"]) == pytest.approx(21_000) and algo["closePosition"]
    fills = run(t, c(120_000), LONG)
    placed = [o for o in fapi.orders.values() if o["type"] == "MARKET"]
    assert [(o["side"], o["reduceOnly"]) for o in placed[-2:]] == [("BUY", True), ("BUY", False)]
    assert [f.side for f in fills] == ["buy", "buy"] and t.book.qty == pytest.approx(0.1)
    assert fapi.position["BTCUSDT"][0] == pytest.approx(0.1)
    (algo,) = [a for a in fapi.algos.values() if a["algoStatus"] == "NEW"]  # re-placed for the long
    assert algo["side"] == "SELL" and float(algo["triggerPrice"]) == pytest.approx(19_000)


def test_a_reduce_only_order_never_opens_the_other_way(fapi: BinanceFuturesServer, ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = trader(tmp_path, ex)
    run(t, c(60_000), LONG)
    fapi.position["BTCUSDT"] = (0.05, 20_000.0)  # someone closed half on the exchange
    step = t.step(120_000, 1, time.time())
    order = Order("BTCUSDT-120000-1-close", "sell", "market", 0.1, 0.0, 120_000, reduce_only=True)
    t.record({"type": "order", "id": order.id, "side": "sell", "kind": "market", "qty": 0.1, "price": 0.0,
              "candle_ts": 120_000, "reduce_only": True}, 1)
    assert t.venue.submit(order, step, at=None, liquidity="taker") == []
    (rej,) = t.journal.of_type("reject")
    assert "-2022" in rej["reason"] and fapi.position["BTCUSDT"][0] == pytest.approx(0.05)


@pytest.mark.parametrize(("kw", "wallet", "code"), [({"size_usd": 50.0, "min_notional": 5.0}, 2000.0, "-4164"),
                                                     ({"leverage": 1}, 1000.0, "-2019")])
def test_the_exchange_refusals_are_journaled_rejects(fapi: BinanceFuturesServer, ex, tmp_path: Path,
                                                     kw: dict[str, object], wallet: float, code: str) -> None:  # type: ignore[no-untyped-def]
    fapi.wallet = wallet
    t = trader(tmp_path, ex, **kw)
    assert run(t, c(60_000), SHORT) == []
    (rej,) = t.journal.of_type("reject")
    assert code in rej["reason"] and t.book.qty == 0 and not fapi.position.get("BTCUSDT", (0, 0))[0]


def test_funding_income_is_journaled_once_across_a_restart(fapi: BinanceFuturesServer, ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = trader(tmp_path, ex)
    run(t, c(60_000), SHORT)
    got = fapi.fund("BTCUSDT", 0.0001, int(time.time() * 1000))
    assert got == pytest.approx(0.2)  # a short receives a positive rate
    run(t, c(8 * 3_600_000), SHORT)  # the candle of the next funding time reads the income
    (f,) = t.journal.of_type("funding")
    assert f["amount"] == pytest.approx(0.2) and f["rate"] == pytest.approx(0.0001) and t.book.funding == 0.2
    t.journal.close()  # type: ignore[attr-defined]
    again = trader(tmp_path, ex)
    run(again, c(8 * 3_600_000 + 60_000), SHORT)  # after a restart the income is read again, from the journal's last
    assert len(again.journal.of_type("funding")) == 1 and again.book.funding == pytest.approx(0.2)


def test_the_exchange_stop_and_liquidation_are_booked_from_the_exchange(
        fapi: BinanceFuturesServer, ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = trader(tmp_path, ex)
    run(t, c(60_000), SHORT)
    fapi.candles["BTCUSDT"] = rows(21_500.0)  # through the stop resting at 21 000
    (fill,) = run(t, c(120_000, 21_500.0), SHORT)  # the exchange's stop closed it: no new short on that side
    assert fill.reason == "stop_loss" and fill.side == "buy"
    stop = t.journal.of_type("fill")[1]
    assert (stop["side"], stop["qty"], stop["price"], stop["reason"]) == ("buy", pytest.approx(0.1), 21_500.0,
                                                                          "stop_loss")
    assert stop["fee"] == pytest.approx(0.1 * 21_500 * 0.0004) and t.book.qty == 0 == fapi.position["BTCUSDT"][0]
    u = trader(tmp_path / "liq", ex, leverage=20, protective_stop_pct=50)
    fapi.candles["BTCUSDT"] = rows(20_000.0)
    run(u, c(180_000), SHORT)
    assert u.book.qty == pytest.approx(-0.1)
    fapi.liquidate("BTCUSDT", 20_950.0, int(time.time() * 1000))
    fapi.candles["BTCUSDT"] = rows(21_400.0)
    run(u, c(240_000, 21_400.0), SHORT)
    entry = [e for e in u.journal.of_type("fill") if e.get("reason") == "liquidation"]
    assert len(entry) == 1 and entry[0]["price"] == pytest.approx(20_950.0) and u.book.qty == 0
    assert entry[0]["fee"] == pytest.approx(0.1 * 20_950 * 0.005)


def test_reconciliation_reads_the_exchange_position(fapi: BinanceFuturesServer, ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = trader(tmp_path, ex)
    run(t, c(60_000), SHORT)
    t.journal.close()  # type: ignore[attr-defined]
    fapi.position["BTCUSDT"] = (-0.15, 20_000.0)  # the exchange holds more than the journal says
    again = trader(tmp_path, ex)
    assert again.book.qty == pytest.approx(-0.15)
    assert again.journal.of_type("fill")[-1]["reason"] == "reconcile"
    assert paths(fapi, "GET", "/fapi/v3/positionRisk") >= 2 and paths(fapi, "GET", "/api/v3/account") == 0


def test_a_liquidation_the_candles_did_not_see_is_read_from_the_exchange(
        fapi: BinanceFuturesServer, ex, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = trader(tmp_path, ex, leverage=20, protective_stop_pct=50)
    run(t, c(60_000), SHORT)
    fapi.liquidate("BTCUSDT", 20_900.0, int(time.time() * 1000))  # a mark-price wick the candles never showed
    (fill,) = run(t, c(120_000), FLAT)
    assert (fill.side, fill.price, fill.reason) == ("buy", 20_900.0, "liquidation") and t.book.qty == 0
    assert t.liquidations == 1 and t.exposure()["liquidations"] == 1
    u = trader(tmp_path / "moved", ex)
    run(u, c(180_000), SHORT)
    fapi.position["BTCUSDT"] = (-0.15, 20_000.0)  # a change nobody here made: journaled as it is, alerted
    fills = run(u, c(240_000), SHORT)
    assert [(f.side, round(f.qty, 9), f.reason) for f in fills] == [("sell", 0.05, "reconcile")]
    assert u.book.qty == pytest.approx(-0.15)
