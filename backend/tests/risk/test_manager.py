"""Sizing invariants (property-based) and hand-computed cases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.risk.manager import RiskManager
from backend.risk.policy import PositionSizing, RiskPolicy

FF = RiskManager(RiskPolicy())
KELLY = RiskManager(RiskPolicy(position_sizing=PositionSizing(method="kelly", kelly_fraction=0.5)))

equity = st.floats(min_value=0, max_value=1e9, allow_nan=False)
vol = st.floats(min_value=-1, max_value=10, allow_nan=False)
prob = st.floats(min_value=0, max_value=1)
conf = st.floats(min_value=0, max_value=1)
payoff = st.floats(min_value=0.01, max_value=20)


def test_hand_computed() -> None:
    # 2 % of 10,000 risked over a 4 % move = 5,000, capped at 20 % of equity = 2,000
    assert FF.calculate_position_size("BTCUSDT", 10_000, 0.04) == 2000.0
    assert FF.calculate_position_size("BTCUSDT", 10_000, 0.25) == 800.0
    # Kelly: p = 0.5 + 0.2 * 0.5 = 0.6, b = 1: f = 0.6 - 0.4 = 0.2; half Kelly: 0.1 of 10,000 = 1,000
    assert KELLY.calculate_position_size("BTCUSDT", 10_000, 0.02, prob_up=0.7, confidence=0.5) == pytest.approx(1000)
    assert KELLY.calculate_position_size("BTCUSDT", 10_000, 0.02, prob_up=0.45) == 0.0  # negative edge
    assert FF.calculate_position_size("BTCUSDT", 300, 0.5) == 12.0  # 2 % of 300 over a 50 % move
    assert FF.calculate_position_size("BTCUSDT", 100, 0.5) == 0.0  # 4 USD < 10 USD minimum: skipped


@settings(max_examples=500)
@given(equity, vol, st.floats(min_value=-1, max_value=1, allow_nan=False))
def test_fixed_fractional_bounds(eq: float, v: float, risk: float) -> None:
    size = FF.calculate_position_size("X", eq, v, risk)
    assert size == 0.0 or (10.0 <= size <= min(5000.0, eq * 0.2) + 1e-9)


@settings(max_examples=500)
@given(equity, prob, conf, payoff)
def test_kelly_bounds_and_no_negative_edge(eq: float, p: float, c: float, b: float) -> None:
    size = KELLY.calculate_position_size("X", eq, 0.02, prob_up=p, confidence=c, payoff_ratio=b)
    assert size == 0.0 or (10.0 <= size <= min(5000.0, eq * 0.2) + 1e-9)
    p_eff = 0.5 + (p - 0.5) * c
    if p_eff - (1 - p_eff) / b <= 0:
        assert size == 0.0


@given(st.floats(min_value=100, max_value=1e7), st.floats(min_value=0.001, max_value=1))
def test_more_volatility_never_means_a_bigger_position(eq: float, v: float) -> None:
    assert FF.calculate_position_size("X", eq, v * 2) <= FF.calculate_position_size("X", eq, v)


@given(st.floats(min_value=100, max_value=1e7), st.floats(min_value=0.001, max_value=1), prob)
def test_more_equity_never_means_a_smaller_position(eq: float, v: float, p: float) -> None:
    for m in (FF, KELLY):
        small = m.calculate_position_size("X", eq, v, prob_up=p)
        big = m.calculate_position_size("X", eq * 2, v, prob_up=p)
        assert big >= small


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5.0, 0.0])
def test_nonsense_inputs_size_zero(bad: float) -> None:
    assert FF.calculate_position_size("X", bad, 0.02) == 0.0
    assert FF.calculate_position_size("X", 10_000, bad) == 0.0
    assert KELLY.calculate_position_size("X", 10_000, 0.02, prob_up=0.9, payoff_ratio=bad) == 0.0


def test_sprint_plan_sizing_table_command() -> None:
    import subprocess
    import sys

    from backend.src.core.settings import REPO_ROOT

    res = subprocess.run([sys.executable, "-m", "backend.risk.test_manager", "--symbols", "20", "--equity", "10000"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len([x for x in lines if x.endswith("USDT") or "USDT " in x]) == 20
    assert "refused: max_concurrent_positions" in res.stdout, "20 positions > 15 allowed"
    assert "15/20 positions admitted" in res.stdout
