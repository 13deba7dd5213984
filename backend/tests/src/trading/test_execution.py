"""Paper broker arithmetic against hand-computed cases."""

from __future__ import annotations

import pytest

from backend.src.trading.execution import Fill, PaperBroker


def broker() -> PaperBroker:
    return PaperBroker("BTCUSDT", initial_equity=10_000, fee_bps=10, slippage_bps=5)


def test_buy_then_sell_round_trip() -> None:
    b = broker()
    buy = b.quote("buy", 2.0, 100.0, order_id="o1", candle_ts=1, now=0)
    assert buy.price == pytest.approx(100.05)  # +5 bps slippage
    assert buy.fee == pytest.approx(2 * 100.05 * 0.001)  # 10 bps taker fee
    b.apply(buy)
    b.mark(110.0)
    assert b.unrealized == pytest.approx(2 * (110 - 100.05))
    sell = b.quote("sell", 2.0, 110.0, order_id="o2", candle_ts=2, now=0)
    assert sell.price == pytest.approx(109.945)
    b.apply(sell)
    assert b.qty == 0 and b.unrealized == 0
    assert b.realized == pytest.approx(2 * (109.945 - 100.05))
    fees = 2 * 100.05 * 0.001 + 2 * 109.945 * 0.001
    assert b.equity == pytest.approx(10_000 + 2 * (109.945 - 100.05) - fees)


def test_average_price_and_partial_close() -> None:
    b = PaperBroker("X", initial_equity=1000, fee_bps=0, slippage_bps=0)
    b.apply(Fill("a", "buy", 1, 100, 0, 1, 0))
    b.apply(Fill("b", "buy", 3, 120, 0, 2, 0))
    assert b.avg_price == pytest.approx(115)
    b.apply(Fill("c", "sell", 2, 130, 0, 3, 0))
    assert b.qty == pytest.approx(2) and b.realized == pytest.approx(30) and b.avg_price == pytest.approx(115)


def test_flip_through_zero_opens_at_fill_price() -> None:
    b = PaperBroker("X", initial_equity=1000, fee_bps=0, slippage_bps=0)
    b.apply(Fill("a", "buy", 1, 100, 0, 1, 0))
    b.apply(Fill("b", "sell", 3, 90, 0, 2, 0))
    assert b.qty == pytest.approx(-2) and b.avg_price == 90 and b.realized == pytest.approx(-10)


def test_rebuild_from_entries_matches_live_state() -> None:
    live = broker()
    entries = [{"type": "day", "day": "2024-01-01", "equity": 10_000.0, "price": 100.0}]
    for i, (side, qty, px) in enumerate([("buy", 1.5, 100), ("sell", 0.5, 105), ("sell", 1.0, 98)]):
        f = live.quote(side, qty, px, order_id=str(i), candle_ts=i, now=0)
        live.apply(f)
        entries.append(f.as_entry())
    rebuilt = broker()
    rebuilt.rebuild(entries)
    assert (rebuilt.qty, rebuilt.realized, rebuilt.fees) == (live.qty, live.realized, live.fees)


def test_bad_order_rejected() -> None:
    with pytest.raises(ValueError, match="qty > 0"):
        broker().quote("buy", 0, 100, order_id="x", candle_ts=1, now=0)
