from __future__ import annotations

import pytest

from backend.risk.policy import DEFAULT_POLICY_PATH, load_policy, parse_policy
from backend.src.errors import UsageError


def test_shipped_policy_is_valid() -> None:
    p = load_policy(DEFAULT_POLICY_PATH)
    assert p.max_concurrent_positions == 15 and p.max_correlated_positions == 5
    assert p.group_of("ETHUSDT") == "majors" and p.group_of("DOGEUSDT") == ""


@pytest.mark.parametrize(("text", "message"), [
    ("max_daily_loss_pct: -1", "max_daily_loss_pct: Input should be greater than 0"),
    ("position_sizing: {method: martingale}", "position_sizing.method: Input should be"),
    ("position_sizing: {min_position_usd: 100, max_position_usd: 50}", "min_position_usd must not exceed"),
    ("correlation_groups: {a: [BTCUSDT], b: [BTCUSDT]}", "BTCUSDT is in two correlation groups"),
    ("max_leverage: 10", "max_leverage: Extra inputs are not permitted"),
    ("max_daily_loss_pct: [3", "not valid YAML"),
])
def test_bad_values_name_the_field(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_policy(text, "policy.yaml")
