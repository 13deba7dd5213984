"""The paper venue's pricing and matching against hand-computed cases."""

from __future__ import annotations

import pytest

from backend.src.core.config import StrategyConfig, SymbolConfig
from backend.src.core.types import Candle
from backend.src.market.exchange_rules import MarketRules
from backend.src.venue.orders import Fill, Order, Step
from backend.src.venue.paper import PaperVenue


def venue(**kw: float) -> PaperVenue:
    return PaperVenue(SymbolConfig(strategy=StrategyConfig(), **{"fee_bps": 10, "slippage_bps": 5, **kw}))


def test_bad_order_rejected() -> None:
    with pytest.raises(ValueError, match="qty > 0"):
        venue().quote("buy", 0, 100, "taker")


def test_a_maker_fill_pays_the_maker_fee_and_no_slippage() -> None:
    v = PaperVenue(SymbolConfig(strategy=StrategyConfig(), fee_bps=10, maker_fee_bps=2, slippage_bps=5))
    assert v.quote("sell", 2.0, 100.0, "maker") == (100.0, pytest.approx(2 * 100.0 * 0.0002))


class Desk:
    """A trader's side of the ``Step``: what it journals and books, in order."""

    def __init__(self) -> None:
        self.entries: list[dict[str, object]] = []

    def record(self, entry: dict[str, object], gen: int) -> dict[str, object]:
        self.entries.append(entry)
        return entry

    def book_fill(self, fill: Fill, gen: int, tags: dict[str, str]) -> Fill:
        self.entries.append({**fill.as_entry(), **tags})
        return fill


def test_a_market_order_rests_until_the_next_open_and_a_limit_fills_through_its_price() -> None:
    cfg = SymbolConfig(strategy=StrategyConfig(), fee_bps=10, maker_fee_bps=2, slippage_bps=5, max_participation=0.5)
    v = PaperVenue(cfg)
    v.configure(cfg, MarketRules(tick_size=0.01))  # as the trader does
    desk, fences = Desk(), []
    step = Step(120_000, 1, 0.0, lambda: fences.append(1), desk)
    market = Order("m", "buy", "market", 2.0, 0.0, 60_000, reason="signal")
    limit = Order("l", "sell", "limit", 10.0, 103.0, 60_000)
    assert v.submit(market, Step(60_000, 1, 0.0, lambda: None, desk), at=None, liquidity="taker") == []
    fills = v.match([market, limit, Order("later", "buy", "market", 1.0, 0.0, 120_000)],
                    Candle(120_000, 102.0, 104.0, 101.0, 103.5, 8.0), step)
    assert [(f.order_id, f.qty, f.price) for f in fills] == [("m", 2.0, 102.05), ("l", 4.0, 103.0)]
    assert [e["liquidity"] for e in desk.entries] == ["taker", "maker"] and len(fences) == 2
    assert fills[1].fee == pytest.approx(4 * 103.0 * 0.0002)  # maker fee, volume capped at 50 % of 8


def test_exchange_terms_on_a_live_feed_and_the_config_when_the_exchange_is_unreachable() -> None:
    from backend.src.market.exchange import ExchangeUnavailable  # noqa: PLC0415
    from backend.src.market.exchange_rules import MarketTerms  # noqa: PLC0415

    terms = MarketTerms(MarketRules(tick_size=0.01), taker=0.001, maker=0.0002)
    assert PaperVenue(venue().cfg, terms=lambda: terms).terms() == terms
    assert PaperVenue(venue().cfg).terms() is None

    def down() -> MarketTerms:
        raise ExchangeUnavailable("binance: timed out")

    assert PaperVenue(venue().cfg, terms=down).terms() is None, "paper never waits on an exchange"
