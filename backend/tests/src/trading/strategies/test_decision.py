"""The ensemble's decision layer: entry threshold, cost edge, no-trade band, minimum hold, no opinion."""

from __future__ import annotations

import math

import pytest

from backend.src.trading.strategies.base import PositionState
from backend.src.trading.strategies.decision import DecisionParams, DecisionRule, Forecast

FLAT = PositionState()
COST = 0.003  # 10 bps fee + 5 bps slippage, both ways


def held(bars: int) -> PositionState:
    return PositionState(qty=1.0, avg_price=100.0, bars_held=bars)


def test_enters_only_when_the_expected_move_pays_the_round_trip() -> None:
    rule = DecisionRule(DecisionParams(threshold=0.55, edge=1.0))
    assert rule(0.6, 0.0031, FLAT, COST) == 1.0
    assert rule(0.6, 0.0029, FLAT, COST) == 0.0, "probable, but the move does not pay the costs"
    assert rule(0.54, 0.05, FLAT, COST) == 0.0, "a big move below the entry probability"
    assert rule(0.6, 0.0029, FLAT, 0.0) == 1.0, "free trading: any positive expectation"
    assert rule(0.6, math.nan, FLAT, COST) == 1.0, "a model without a return forecast: the probability decides"


def test_no_trade_band_and_minimum_hold() -> None:
    rule = DecisionRule(DecisionParams(threshold=0.6, exit_threshold=0.5, min_hold=6, edge=1.0))
    assert rule(0.52, -0.01, held(10), COST) == 1.0, "inside the band a held position stays"
    assert rule(0.45, -0.01, held(10), COST) == 0.0
    assert rule(0.45, -0.01, held(5), COST) == 1.0, "held fewer than min_hold candles: noise does not flip it"
    assert rule(0.45, -0.01, held(6), COST) == 0.0
    assert rule(math.nan, 0.0, held(1), COST) == 0.0, "no opinion (no model, missing inputs): flat at once"


def test_the_state_is_the_journals_position() -> None:
    """After a restart the rule has no memory: what the journal holds decides which side of the band applies."""
    rule = DecisionRule(DecisionParams(threshold=0.6))
    assert [rule(p, math.nan, FLAT, COST) for p in (0.55, 0.61, 0.52, 0.49)] == [0, 1, 0, 0]
    assert [rule(p, math.nan, held(3), COST) for p in (0.55, 0.61, 0.52, 0.49)] == [1, 1, 1, 0]


@pytest.mark.parametrize("kwargs", [{"threshold": 0.45}, {"threshold": 0.6, "exit_threshold": 0.7}, {"min_hold": -1},
                                    {"edge": -0.5}, {"threshold": 1.0}])
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="decision"):
        DecisionParams(**kwargs)  # type: ignore[arg-type]


def short(bars: int) -> PositionState:
    return PositionState(qty=-1.0, avg_price=100.0, bars_held=bars)


def test_shorts_mirror_the_longs_and_turn_over_on_one_candle() -> None:
    rule = DecisionRule(DecisionParams(threshold=0.6, exit_threshold=0.55, edge=1.0))
    assert rule(0.35, -0.0031, FLAT, COST) == 0.0, "a spot symbol is long-only"
    assert rule(0.35, -0.0031, FLAT, COST, shorts=True) == -1.0
    assert rule(0.35, -0.0029, FLAT, COST, shorts=True) == 0.0, "the fall does not pay the round trip"
    assert rule(0.44, -0.05, short(3), COST, shorts=True) == -1.0, "held while P(up) <= 1 - exit_threshold"
    assert rule(0.5, -0.05, short(3), COST, shorts=True) == 0.0, "out in the no-trade band"
    assert rule(0.65, 0.01, short(3), COST, shorts=True) == 1.0, "short to long on the same candle"
    assert rule(0.3, -0.01, held(3), COST, shorts=True) == -1.0, "long to short on the same candle"


def test_funding_carry_is_paid_by_the_side_that_pays_it() -> None:
    rule = DecisionRule(DecisionParams(threshold=0.6, edge=1.0))
    carry = 0.001  # longs expect to pay 0.1 % over the horizon, shorts to receive it
    assert rule(0.7, 0.0035, FLAT, COST, shorts=True, carry=carry) == 0.0, "the long's move pays fees, not funding"
    assert rule(0.7, 0.0045, FLAT, COST, shorts=True, carry=carry) == 1.0
    assert rule(0.3, -0.0025, FLAT, COST, shorts=True, carry=carry) == -1.0, "the short is paid to wait"


def test_size_follows_volatility_and_the_kelly_bet_in_whole_steps() -> None:
    rule = DecisionRule(DecisionParams(threshold=0.55, vol_target=0.3, kelly_cap=0.25))
    calm, wild = Forecast(0.6, 0.02, 0.05, 0.25), Forecast(0.6, 0.02, 0.05, 0.9)
    assert rule(calm, math.nan, FLAT, COST) == 1.0, "calm: 0.3 / 0.25 caps at 1, Kelly 0.25 x 0.02 / 0.05^2 = 2"
    assert rule(wild, math.nan, FLAT, COST) == 0.25, "0.3 / 0.9 = 0.33: one step"
    weak = Forecast(0.6, 0.004, 0.05, 0.25)  # Kelly: 0.25 x 0.004 / 0.0025 = 0.4
    assert rule(weak, math.nan, FLAT, COST) == 0.25
    assert rule(Forecast(0.6, 0.001, 0.05, 0.25), math.nan, FLAT, COST) == 0.0, "below one step: no trade"
    assert rule(Forecast(0.6, 0.02, 0.05, math.nan), math.nan, FLAT, COST) == 0.0, "no volatility: no size"
    long_half = PositionState(qty=1.0, avg_price=100.0, bars_held=3, target=0.5)
    assert rule(Forecast(0.6, 0.02, 0.05, 0.45), math.nan, long_half, COST) == 0.5, "0.67: within a step of 0.5"
    assert rule(Forecast(0.6, 0.02, 0.05, 0.25), math.nan, long_half, COST) == 1.0, "a whole step more"
    shorts = DecisionRule(DecisionParams(threshold=0.55, vol_target=0.3))
    assert shorts(Forecast(0.3, -0.02, 0.05, 0.6), math.nan, FLAT, COST, shorts=True) == -0.5
    with pytest.raises(ValueError, match="size_step"):
        DecisionParams(size_step=0)
