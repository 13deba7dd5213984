"""The real ccxt client against the local Binance stand-in: markets, candles, funding, errors."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from backend.src.core.errors import UsageError
from backend.src.market.exchange import (
    ExchangeUnavailable,
    call,
    fetch_candles,
    fetch_funding_rate,
    make_exchange,
    resolve_symbol,
)
from backend.src.market.live_source import LiveSource
from backend.tests.conftest import wait_for
from backend.tests.fakes.binance_server import BinanceServer, generated

NO_SLEEP = {"sleep": lambda s: None}


@pytest.fixture
def binance() -> Iterator[BinanceServer]:
    server = BinanceServer({"BTCUSDT": generated(1000), "ETHUSDT": generated(1000, 50.0)}, timeframe="1s")
    yield server
    server.close()


@pytest.fixture
def ex(binance: BinanceServer):  # type: ignore[no-untyped-def]
    client = make_exchange("binance", base_url=binance.url, timeout_s=1.0)
    client.load_markets()
    return client


def test_symbols_map_through_the_markets(ex) -> None:  # type: ignore[no-untyped-def]
    assert resolve_symbol(ex, "BTCUSDT") == "BTC/USDT"
    assert resolve_symbol(ex, "ETH/USDT") == "ETH/USDT"
    assert resolve_symbol(ex, "BTCUSDT", kind="swap") == "BTC/USDT:USDT"
    with pytest.raises(UsageError, match="DOGEUSDT is not a spot market on binance"):
        resolve_symbol(ex, "DOGEUSDT")


def test_unknown_exchange() -> None:
    with pytest.raises(UsageError, match="unknown exchange 'notanexchange'"):
        make_exchange("notanexchange")


def test_candles_and_retries_on_429_418_5xx_timeouts_and_garbage(binance: BinanceServer, ex) -> None:  # type: ignore[no-untyped-def]
    binance.plan.extend(["429", "418", "500"])
    waits: list[float] = []
    rows = fetch_candles(ex, "BTC/USDT", "1s", limit=5, sleep=waits.append)
    assert len(rows) == 5 and all(len(r) == 6 for r in rows)
    assert len(waits) == 3 and waits[0] >= 1.0 and waits[1] >= 1.0, "429/418 back off at least 1 s"
    binance.plan.extend(["slow", "malformed"])
    assert len(fetch_candles(ex, "BTC/USDT", "1s", limit=5, sleep=waits.append)) == 5
    assert len(waits) == 5
    binance.down = True
    with pytest.raises(ExchangeUnavailable):
        fetch_candles(ex, "BTC/USDT", "1s", limit=5, **NO_SLEEP)


def test_funding_rate(binance: BinanceServer, ex) -> None:  # type: ignore[no-untyped-def]
    fr = call(ex.fetch_funding_rate, resolve_symbol(ex, "BTCUSDT", kind="swap"), **NO_SLEEP)
    assert fr["fundingRate"] == 0.0001 and fr["markPrice"] > 0
    binance.plan.append("429")
    got = fetch_funding_rate(ex, "BTCUSDT")
    assert got["market"] == "BTC/USDT:USDT" and got["rate"] == 0.0001 and got["next_funding_ms"]
    assert got["next_funding_ms"] % 28_800_000 == 0  # type: ignore[operator]
    with pytest.raises(UsageError, match="not a swap market"):
        fetch_funding_rate(ex, "DOGEUSDT")


def test_live_source_delivers_each_closed_candle_once(ex) -> None:  # type: ignore[no-untyped-def]
    src = LiveSource(ex, "BTC/USDT", "1s", poll_delay_s=0.05)
    hist = src.warmup(10)
    assert len(hist) == 10 and hist[-1].ts + 1000 <= time.time() * 1000
    got = []
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        c = src.poll(time.time())
        if c:
            got.append(c)
        time.sleep(0.01)
    src.stop()
    assert len(got) >= 2
    ts = [hist[-1].ts] + [c.ts for c in got]
    assert all(b - a == 1000 for a, b in zip(ts, ts[1:], strict=False)), "consecutive, closed, no duplicates"


def test_live_source_backfills_after_an_outage(binance: BinanceServer, ex) -> None:  # type: ignore[no-untyped-def]
    src = LiveSource(ex, "BTC/USDT", "1s", poll_delay_s=0.05)
    start = src.warmup(5)[-1].ts
    binance.down = True
    time.sleep(3.0)
    binance.down = False
    got = []

    def caught_up() -> bool:
        c = src.poll(time.time())
        while c:
            got.append(c)
            c = src.poll(time.time())
        return bool(got) and got[-1].ts >= int(time.time() * 1000) - 2500

    wait_for(caught_up, 10, interval=0.05, what="backfill")
    src.stop()
    ts = [start] + [c.ts for c in got]
    assert all(b - a == 1000 for a, b in zip(ts, ts[1:], strict=False)), "the outage left no hole"
    assert len(got) >= 3
