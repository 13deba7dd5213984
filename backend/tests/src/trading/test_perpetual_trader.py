"""Shorts, flips, funding and liquidation through the one trader and paper venue, by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.src.core.config import StrategyConfig, SymbolConfig
from backend.src.core.types import Candle, Signal
from backend.src.engine.journal import FileJournal
from backend.src.market.perpetual import Brackets, liquidation_price
from backend.src.trading.book import PositionBook
from backend.src.trading.trader import Trader
from backend.src.venue.paper import PaperVenue

T0 = 1_699_977_600_000  # a funding time (16:00 UTC)
H = 3_600_000
LONG, SHORT, FLAT = Signal(1.0, 0.7, 0.4, "t"), Signal(-1.0, 0.3, 0.4, "t"), Signal(0.0, 0.5, 0.0, "t")


def cfg(**kw: object) -> SymbolConfig:
    base = {"strategy": StrategyConfig(), "size_usd": 2000.0, "fee_bps": 5.0, "maker_fee_bps": 2.0,
            "slippage_bps": 0.0, "max_position_usd": 5000.0, "market": "perpetual", "leverage": 10,
            "funding_rate": 0.0001, "liquidation_buffer_atr": 0.0}
    return SymbolConfig.model_validate({**base, **kw})


def trader(path: Path, **kw: object) -> Trader:
    config = cfg(**kw)
    return Trader("BTCUSDT", config, FileJournal(path / "BTCUSDT.jsonl"), PaperVenue(config), source_id="synthetic")


def c(ts: int, o: float, h: float | None = None, lo: float | None = None, cl: float | None = None) -> Candle:
    return Candle(ts, o, h if h is not None else o, lo if lo is not None else o, cl if cl is not None else o, 1e6)


def run(t: Trader, candle: Candle, sig: Signal | None) -> list:  # type: ignore[type-arg]
    step = t.step(candle.ts, 1, candle.ts / 1000)
    return t.begin_candle(candle, step) + t.end_candle(candle, sig, step)


def test_a_short_fills_at_the_next_open_and_is_rebuilt_from_the_journal(tmp_path: Path) -> None:
    t = trader(tmp_path)
    run(t, c(T0 - H, 20_000), SHORT)
    fills = run(t, c(T0, 20_000), SHORT)  # the short fills at T0's open: nothing was held into T0
    assert [(f.side, f.qty, f.price) for f in fills] == [("sell", 0.1, 20_000.0)]
    assert t.book.qty == pytest.approx(-0.1) and t.book.funding == 0
    assert t.book.margin == pytest.approx(200)
    t.journal.close()  # type: ignore[attr-defined]
    again = trader(tmp_path)
    assert (again.book.qty, again.book.avg_price, again.book.margin) == (t.book.qty, t.book.avg_price, t.book.margin)


def test_funding_is_paid_by_longs_and_received_by_shorts_at_funding_times_only(tmp_path: Path) -> None:
    for sig, sign, sub in ((SHORT, 1, "short"), (LONG, -1, "long")):
        t = trader(tmp_path / sub)
        run(t, c(T0 - H, 20_000), sig)
        for i in range(9):  # T0 .. T0 + 8h
            run(t, c(T0 + i * H, 20_000 if i < 8 else 21_000), sig)
        funding = [e for e in t.journal.entries if e["type"] == "funding"]
        assert len(funding) == 1 and funding[0]["candle_ts"] == T0 + 8 * H
        assert funding[0]["amount"] == pytest.approx(sign * 0.1 * 21_000 * 0.0001)  # at the funding time's mark
        assert t.book.funding == pytest.approx(sign * 0.21)
        fees = 0.1 * 20_000 * 0.0005
        t.book.mark(21_000)  # the session marks at each close
        assert t.book.equity == pytest.approx(10_000 - fees + sign * 0.21 - sign * 0.1 * 1000)
        assert t.book.daily_pnl == pytest.approx(-fees + sign * 0.21 - sign * 100)  # what the global stop reads
        t.journal.close()  # type: ignore[attr-defined]
        again = trader(tmp_path / sub)
        again.book.mark(21_000)
        assert (again.book.funding, again.book.margin, again.book.equity) == pytest.approx(
            (t.book.funding, t.book.margin, t.book.equity))


def test_long_to_short_is_a_reduce_only_close_and_an_open(tmp_path: Path) -> None:
    t = trader(tmp_path)
    run(t, c(T0 - 2 * H, 20_000), LONG)
    run(t, c(T0 - H, 20_000), SHORT)  # the long fills at this open; the flip is decided at its close
    orders = [e for e in t.journal.entries if e["type"] == "order"]
    assert [(o["side"], o["qty"], o["reduce_only"]) for o in orders[-2:]] == [("sell", 0.1, True), ("sell", 0.1, False)]
    fills = run(t, c(T0, 19_000), SHORT)
    assert [(f.side, f.qty) for f in fills] == [("sell", 0.1), ("sell", pytest.approx(2000 / 20_000))]
    assert t.book.qty == pytest.approx(-0.1) and t.book.avg_price == 19_000
    assert t.book.realized == pytest.approx(-100)


def test_a_spot_symbol_never_goes_short(tmp_path: Path) -> None:
    config = SymbolConfig(size_usd=2000, fee_bps=5, slippage_bps=0)
    t = Trader("BTCUSDT", config, FileJournal(tmp_path / "j.jsonl"), PaperVenue(config), source_id="synthetic")
    run(t, c(T0 - H, 20_000), SHORT)
    run(t, c(T0, 20_000), SHORT)
    assert t.book.qty == 0 and not [e for e in t.journal.entries if e["type"] == "order"]


def test_a_short_is_liquidated_at_its_price_with_the_fee(tmp_path: Path) -> None:
    t = trader(tmp_path, liquidation_fee_bps=50)
    run(t, c(T0 - H, 20_000), SHORT)
    run(t, c(T0, 20_000), SHORT)
    liq = liquidation_price(-0.1, 20_000, 200, Brackets.default("BTCUSDT"))
    fills = run(t, c(T0 + H, 20_500, 23_000, 20_400, 22_800), SHORT)
    assert [(f.side, f.qty, f.price) for f in fills] == [("buy", 0.1, pytest.approx(liq))]
    entry = [e for e in t.journal.entries if e["type"] == "fill"][-1]
    assert entry["reason"] == "liquidation" and entry["fee"] == pytest.approx(0.1 * liq * 0.005)
    assert t.book.qty == 0 and t.book.realized == pytest.approx(-0.1 * (liq - 20_000))
    assert run(t, c(T0 + 2 * H, 22_000), SHORT) == []  # no re-entry on that side until the signal leaves it
    assert t.book.qty == 0


def test_a_stop_inside_the_liquidation_price_is_hit_first_unless_the_open_gaps_through(tmp_path: Path) -> None:
    t = trader(tmp_path / "a", stop_loss_pct=5)
    run(t, c(T0 - H, 20_000), SHORT)
    run(t, c(T0, 20_000), SHORT)
    fills = run(t, c(T0 + H, 20_100, 23_000, 20_000, 22_900), SHORT)
    assert [(f.price, t.journal.entries[-1]["reason"]) for f in fills] == [(21_000.0, "stop_loss")]
    g = trader(tmp_path / "b", stop_loss_pct=5)
    run(g, c(T0 - H, 20_000), SHORT)
    run(g, c(T0, 20_000), SHORT)
    fills = run(g, c(T0 + H, 23_000, 23_500, 22_900, 23_100), SHORT)  # opened beyond both
    assert [e["reason"] for e in g.journal.entries if e["type"] == "fill"][-1] == "liquidation"


def test_an_entry_whose_stop_is_beyond_its_liquidation_is_refused_with_the_reason(tmp_path: Path) -> None:
    t = trader(tmp_path, leverage=25, stop_loss_pct=5)  # 25x: liquidated ~3.6 % away, the stop is 5 %
    run(t, c(T0 - H, 20_000), SHORT)
    rejects = [e for e in t.journal.entries if e["type"] == "reject"]
    assert len(rejects) == 1 and "beyond the liquidation price" in rejects[0]["reason"]
    assert not [e for e in t.journal.entries if e["type"] == "order"]
    t2 = trader(tmp_path / "atr", leverage=25, liquidation_buffer_atr=3.0)
    assert t2.sizer is None  # no ATR without a sizer: the stop check alone
    book = PositionBook("BTCUSDT", initial_equity=10_000, leverage=25)
    assert "closer than 3 ATR" in t2.margin.refuse(book, -0.1, 20_000, 0.0, atr=400)  # type: ignore[union-attr]
    assert "margin insufficient" in t2.margin.refuse(book, -20, 20_000, 0.0, atr=0)  # type: ignore[union-attr]
    assert "above the 20x allowed" in t2.margin.refuse(book, -1000, 20_000, 0.0, atr=0)  # type: ignore[union-attr]


def test_the_global_stop_buys_a_short_back_reduce_only(tmp_path: Path) -> None:
    t = trader(tmp_path)
    run(t, c(T0 - H, 20_000), SHORT)
    run(t, c(T0, 20_000), SHORT)
    fills = t.flatten(20_100, T0 + H, gen=1, now=0.0, reason="global_stop")
    assert [(f.side, f.qty) for f in fills] == [("buy", 0.1)] and t.book.qty == 0
    assert [e for e in t.journal.entries if e["type"] == "order"][-1]["reduce_only"] is True


class Full:
    """A portfolio with no room left: every entry refused."""

    halted_reason = ""

    def allow_open(self, exposure: float, equity: float) -> bool:
        return False

    def flat(self) -> None:
        return None


def test_closing_and_turning_need_no_portfolio_room_but_the_new_side_does(tmp_path: Path) -> None:
    t = trader(tmp_path)
    run(t, c(T0 - 2 * H, 20_000), SHORT)
    run(t, c(T0 - H, 20_000), SHORT)
    t.gate = Full()
    run(t, c(T0, 20_000), LONG)  # the short is closed; the long is refused
    orders = [e for e in t.journal.entries if e["type"] == "order"]
    assert [(o["side"], o["reduce_only"]) for o in orders[1:]] == [("buy", True)]
    run(t, c(T0 + H, 20_000), FLAT)
    assert t.book.qty == 0
    u = trader(tmp_path / "flat")
    run(u, c(T0 - 2 * H, 20_000), LONG)
    run(u, c(T0 - H, 20_000), LONG)
    u.gate = Full()
    run(u, c(T0, 20_000), FLAT)
    run(u, c(T0 + H, 20_000), FLAT)
    assert u.book.qty == 0, "a position is closed whatever the portfolio says"
