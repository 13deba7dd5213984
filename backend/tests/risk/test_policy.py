from __future__ import annotations

import pytest

from backend.risk.policy import DEFAULT_POLICY_PATH, load_policy, parse_policy
from backend.src.core.errors import UsageError


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


def test_policy_file_hot_reload_and_bad_edit_refused(start_manager, r, ns, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from backend.tests.conftest import wait_for
    from backend.tests.integration.helpers import events, running_pid, state, wait_running

    policy = tmp_path / "policy.yaml"
    policy.write_text("max_daily_loss_pct: 50\n")
    start_manager(["BTCUSDT", "ETHUSDT"], risk_policy=policy)
    pids = wait_running(r, ns, ["BTCUSDT", "ETHUSDT"])
    wait_for(lambda: all(state(r, ns, s).get("policy_version") == "1" for s in pids), 5, what="policy v1")
    import time

    time.sleep(1.1)
    policy.write_text("max_daily_loss_pct: -2\n")
    wait_for(lambda: any("max_daily_loss_pct" in e.get("reason", "") for e in events(r, ns, "config_rejected")), 5,
             what="bad policy refused")
    assert all(state(r, ns, s).get("policy_version") == "1" for s in pids), "last good policy stays"
    policy.write_text("max_daily_loss_pct: 40\nmax_concurrent_positions: 7\n")
    wait_for(lambda: all(state(r, ns, s).get("policy_version") == "2" for s in pids), 5, what="policy v2 applied")
    assert {s: running_pid(r, ns, s) for s in pids} == pids, "without a restart"
