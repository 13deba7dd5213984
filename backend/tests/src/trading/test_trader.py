"""Paper execution against hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.src.core.config import StrategyConfig, SymbolConfig
from backend.src.core.types import Candle, Signal
from backend.src.engine.journal import FileJournal
from backend.src.market.exchange_rules import MarketRules, OrderRejected
from backend.src.trading.trader import Trader
from backend.src.venue.paper import PaperVenue

LONG, FLAT = Signal(1.0, 0.7, 0.4, "test"), Signal(0.0, 0.3, 0.4, "test")


def cfg(**kw: object) -> SymbolConfig:
    base = {"strategy": StrategyConfig(), "size_usd": 1000.0, "fee_bps": 10.0, "maker_fee_bps": 2.0,
            "slippage_bps": 5.0, "max_position_usd": 5000.0}
    return SymbolConfig.model_validate({**base, **kw})


def trader(tmp_path: Path, **kw: object) -> Trader:
    config = cfg(**kw)
    return Trader("BTCUSDT", config, FileJournal(tmp_path / "BTCUSDT.jsonl"), PaperVenue(config),
                  source_id="synthetic")


def c(ts: int, o: float, h: float, lo: float, cl: float, v: float = 1000.0) -> Candle:
    return Candle(ts, o, h, lo, cl, v)


def step(t: Trader, candle: Candle, sig: Signal | None) -> list:  # type: ignore[type-arg]
    """Both halves of a candle, for a signal decided without the position."""
    step = t.step(candle.ts, 1, 0.0)
    return t.begin_candle(candle, step) + t.end_candle(candle, sig, step)


def test_rules_round_and_reject() -> None:
    r = MarketRules(tick_size=0.01, step_size=0.001, min_qty=0.001, min_notional=10)
    assert r.check(0.0129, 1000.0) == 0.012  # lot step rounds down
    assert r.round_price(100.017, "buy") == 100.01 and r.round_price(100.011, "sell") == 100.02
    with pytest.raises(OrderRejected, match="LOT_SIZE"):
        r.check(0.0009, 1000.0)
    with pytest.raises(OrderRejected, match="MIN_NOTIONAL: 0.009 x 1000 = 9.0000 < 10"):
        r.check(0.0099, 1000.0)


def test_rules_from_a_ccxt_market() -> None:
    market = {"precision": {"price": 0.01, "amount": 0.00001},
              "limits": {"amount": {"min": 0.00001}, "cost": {"min": 5.0}}}
    assert MarketRules.from_ccxt(market) == MarketRules(0.01, 0.00001, 0.00001, 5.0)
    digits = {"precision": {"price": 2, "amount": 3}, "limits": {}}
    assert MarketRules.from_ccxt(digits, precision_mode=2) == MarketRules(0.01, 0.001, 0.0, 0.0)


def test_market_order_fills_at_the_next_open_with_fee_and_precision(tmp_path: Path) -> None:
    t = trader(tmp_path, step_size=0.001, tick_size=0.01)
    assert step(t, c(60_000, 100, 101, 99, 100), LONG) == [], "decided at this close, not filled at it"
    (order,) = t.orders.values()
    assert order.kind == "market" and order.qty == 10.0  # 1000 USD / 100, on the 0.001 step
    (fill,) = step(t, c(120_000, 102, 103, 101, 102.5), LONG)
    assert fill.price == 102.05  # the next open +5 bps slippage, on the tick
    assert fill.fee == pytest.approx(10 * 102.05 * 0.001)  # taker 10 bps
    assert t.book.qty == 10.0 and t.orders == {}
    assert step(t, c(180_000, 102, 103, 101, 110), LONG) == [], "the standing signal is not re-sized"


def test_min_notional_rejects_and_journals(tmp_path: Path) -> None:
    t = trader(tmp_path, size_usd=4.0, min_notional=5.0)
    assert step(t, c(60_000, 100, 101, 99, 100), LONG) == []
    (rej,) = t.journal.of_type("reject")
    assert "MIN_NOTIONAL" in rej["reason"] and t.book.qty == 0


def test_limit_order_rests_fills_partially_with_maker_fee(tmp_path: Path) -> None:
    t = trader(tmp_path, order_type="limit", limit_offset_bps=100, tick_size=0.01, max_participation=0.5)
    assert step(t, c(60_000, 100, 101, 99.5, 100), LONG) == []  # rests at 99.00
    (order,) = t.orders.values()
    assert order.price == 99.0 and order.qty == 10.0
    assert step(t, c(120_000, 100, 101, 99.5, 100), LONG) == [], "not touched"
    (f1,) = step(t, c(180_000, 99.8, 100, 98.5, 99.2, v=8.0), LONG)  # touched; volume caps at 50% of 8
    assert (f1.qty, f1.price) == (4.0, 99.0) and f1.fee == pytest.approx(4 * 99.0 * 0.0002)
    (f2,) = step(t, c(240_000, 98.0, 99.5, 97.5, 99.0, v=100.0), LONG)  # opens below the limit: price improves
    assert (f2.qty, f2.price) == (6.0, 98.0)
    assert t.orders == {} and t.book.qty == 10.0


def test_stop_loss_take_profit_and_gap_through(tmp_path: Path) -> None:
    t = trader(tmp_path, stop_loss_pct=2.0, take_profit_pct=3.0, slippage_bps=0.0)
    step(t, c(60_000, 100, 100, 100, 100), LONG)
    (entry, stop) = step(t, c(120_000, 100.0, 100, 97.0, 98.0), LONG)  # bought at the open; low 97 < stop 98
    assert (entry.side, entry.price) == ("buy", 100.0)
    assert stop.side == "sell" and stop.price == pytest.approx(98.0) and t.book.qty == 0
    assert step(t, c(180_000, 98, 99, 97, 98), LONG) == [], "no re-entry while the signal stays long"
    step(t, c(240_000, 98, 99, 97, 98), FLAT)
    step(t, c(300_000, 100, 100, 100, 100), LONG)
    (entry,) = step(t, c(360_000, 100, 100, 100, 100), LONG)
    (take,) = step(t, c(420_000, 104.0, 105, 103.5, 104.5), LONG)  # opens above the take-profit: fills at open
    assert take.price == pytest.approx(104.0) and take.fee == pytest.approx(take.qty * 104.0 * 0.0002)


def test_book_and_position_rebuilt_from_the_journal(tmp_path: Path) -> None:
    t = trader(tmp_path, order_type="limit", limit_offset_bps=100, max_participation=0.5)
    step(t, c(60_000, 100, 101, 99.5, 100), LONG)
    step(t, c(120_000, 99.8, 100, 98.5, 99.2, v=8.0), LONG)
    t.journal.close()
    again = Trader("BTCUSDT", t.cfg, FileJournal(tmp_path / "BTCUSDT.jsonl"), PaperVenue(t.cfg), source_id="synthetic")
    assert again.book.qty == t.book.qty == 4.0
    assert [(o.id, o.remaining) for o in again.orders.values()] == [(o.id, o.remaining) for o in t.orders.values()]
    assert again.last_candle == 120_000
    assert step(again, c(120_000, 99.8, 100, 98.5, 99.2, v=8.0), LONG) == [], "a replayed candle is not re-traded"
