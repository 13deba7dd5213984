"""Position book arithmetic against hand-computed cases (fills priced by the paper venue)."""

from __future__ import annotations

import pytest

from backend.src.core.config import StrategyConfig, SymbolConfig
from backend.src.trading.book import PositionBook
from backend.src.venue.orders import Fill
from backend.src.venue.paper import PaperVenue


def book() -> PositionBook:
    return PositionBook("BTCUSDT", initial_equity=10_000)


def venue() -> PaperVenue:
    return PaperVenue(SymbolConfig(strategy=StrategyConfig(), fee_bps=10, slippage_bps=5))


def taker(side: str, qty: float, price: float, order_id: str, candle_ts: int) -> Fill:
    px, fee = venue().quote(side, qty, price, "taker")
    return Fill(order_id, side, qty, px, fee, candle_ts, 0)


def test_buy_then_sell_round_trip() -> None:
    b = book()
    buy = taker("buy", 2.0, 100.0, "o1", 1)
    assert buy.price == pytest.approx(100.05)  # +5 bps slippage
    assert buy.fee == pytest.approx(2 * 100.05 * 0.001)  # 10 bps taker fee
    b.apply(buy)
    b.mark(110.0)
    assert b.unrealized == pytest.approx(2 * (110 - 100.05))
    sell = taker("sell", 2.0, 110.0, "o2", 2)
    assert sell.price == pytest.approx(109.945)
    b.apply(sell)
    assert b.qty == 0 and b.unrealized == 0
    assert b.realized == pytest.approx(2 * (109.945 - 100.05))
    fees = 2 * 100.05 * 0.001 + 2 * 109.945 * 0.001
    assert b.equity == pytest.approx(10_000 + 2 * (109.945 - 100.05) - fees)


def test_average_price_and_partial_close() -> None:
    b = PositionBook("X", initial_equity=1000)
    b.apply(Fill("a", "buy", 1, 100, 0, 1, 0))
    b.apply(Fill("b", "buy", 3, 120, 0, 2, 0))
    assert b.avg_price == pytest.approx(115)
    b.apply(Fill("c", "sell", 2, 130, 0, 3, 0))
    assert b.qty == pytest.approx(2) and b.realized == pytest.approx(30) and b.avg_price == pytest.approx(115)


def test_flip_through_zero_opens_at_fill_price() -> None:
    b = PositionBook("X", initial_equity=1000)
    b.apply(Fill("a", "buy", 1, 100, 0, 1, 0))
    b.apply(Fill("b", "sell", 3, 90, 0, 2, 0))
    assert b.qty == pytest.approx(-2) and b.avg_price == 90 and b.realized == pytest.approx(-10)


def test_rebuild_from_entries_matches_live_state() -> None:
    live = book()
    entries = [{"type": "day", "day": "2024-01-01", "equity": 10_000.0, "price": 100.0}]
    for i, (side, qty, px) in enumerate([("buy", 1.5, 100), ("sell", 0.5, 105), ("sell", 1.0, 98)]):
        f = taker(side, qty, px, str(i), i)
        live.apply(f)
        entries.append(f.as_entry())
    rebuilt = book()
    rebuilt.rebuild(entries)
    assert (rebuilt.qty, rebuilt.realized, rebuilt.fees) == (live.qty, live.realized, live.fees)
