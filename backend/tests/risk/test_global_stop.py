"""The global stop with real engines: trigger, everyone flat and halted, persistence, operator clear."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from backend.risk.global_stop_drill import write_day
from backend.src.core.settings import REPO_ROOT
from backend.tests.conftest import ApiServer, ManagerProc, wait_for
from backend.tests.integration.helpers import events, state, wait_running


def test_sprint_plan_command_stops_every_engine() -> None:
    res = subprocess.run([sys.executable, "-m", "backend.risk.test_global_stop", "--daily-loss", "-4.0",
                          "--engines", "6", "--restart-check"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "all engines stopped: 6 engines flat and halted" in res.stdout
    assert "still halted" in res.stdout


def test_status_metrics_and_operator_clear(api: ApiServer, start_manager: Callable[..., ManagerProc],
                                          engine_config: Path, r: redis.Redis, ns: str, tmp_path: Path,
                                          api_token: str) -> None:
    write_day(tmp_path / "day.csv", -6.0)
    (tmp_path / "policy.yaml").write_text("max_daily_loss_pct: 3\nmax_symbol_exposure_pct: 100\n"
                                          "max_symbol_risk_pct: 100\n")
    engine_config.write_text("defaults:\n  strategy: {name: buy_and_hold}\n  size_usd: 10000\n"
                             "  max_position_usd: 10000\n  stop_loss_pct: 10\n")
    syms = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
    start_manager(syms, "--source", f"replay:{tmp_path / 'day.csv'}", risk_policy=tmp_path / "policy.yaml",
                  replay_speed=3000)
    wait_running(r, ns, syms)
    wait_for(lambda: httpx.get(api.url + "/risk").json()["global_stop"]["active"], 60, what="global stop")
    wait_for(lambda: all(state(r, ns, s).get("halted") and float(state(r, ns, s)["position"]) == 0 for s in syms),
             2, what="all flat and halted")
    assert events(r, ns, "global_stop")
    wait_for(lambda: httpx.get(api.url + "/engines/status").json()["global_stop"] is True, 2)
    assert "levibot_global_stop_active 1.0" in httpx.get(api.url + "/metrics").text
    assert httpx.post(api.url + "/risk/global-stop/clear").status_code == 401
    res = httpx.post(api.url + "/risk/global-stop/clear", headers={"Authorization": f"Bearer {api_token}"})
    assert res.status_code == 200 and res.json()["cleared"] is True
    wait_for(lambda: not any(state(r, ns, s).get("halted") for s in syms), 3, what="engines resume")
    assert not httpx.get(api.url + "/risk").json()["global_stop"]["active"], "held off for the rest of the day"
    assert events(r, ns, "global_stop_cleared")


def test_the_global_stop_buys_shorts_back_reduce_only(start_manager: Callable[..., ManagerProc], engine_config: Path,
                                                       r: redis.Redis, ns: str, tmp_path: Path,
                                                       data_dir: Path) -> None:
    from backend.tests.integration.helpers import journal_entries  # noqa: PLC0415

    write_day(tmp_path / "day.csv", +6.0)  # a rising day: the shorts lose
    (tmp_path / "policy.yaml").write_text("max_daily_loss_pct: 3\nmax_symbol_exposure_pct: 100\n"
                                          "max_symbol_risk_pct: 100\n")
    (tmp_path / "short.levi.yaml").write_text("levilang: 1\nname: always_short\nentry: close < 0\n"
                                              "entry_short: close > 0\n")
    engine_config.write_text("defaults:\n  strategy: {levilang: short.levi.yaml}\n  market: perpetual\n"
                             "  leverage: 2\n  size_usd: 10000\n  max_position_usd: 10000\n  stop_loss_pct: 10\n"
                             "  funding_rate: 0.0001\n")
    syms = ["SSAUSDT", "SSBUSDT"]
    start_manager(syms, "--source", f"replay:{tmp_path / 'day.csv'}", risk_policy=tmp_path / "policy.yaml",
                  replay_speed=3000)
    wait_running(r, ns, syms)
    wait_for(lambda: all(float(state(r, ns, s).get("position") or 0) < 0 for s in syms), 30, what="both short")
    wait_for(lambda: events(r, ns, "global_stop"), 60, what="global stop")
    wait_for(lambda: all(state(r, ns, s).get("halted") and float(state(r, ns, s)["position"]) == 0 for s in syms),
             3, what="all flat and halted")
    for s in syms:
        entries = journal_entries(data_dir, s)
        (order,) = [e for e in entries if e["type"] == "order" and e.get("reason") == "global_stop"]
        assert order["side"] == "buy" and order["reduce_only"] is True
        assert [e for e in entries if e["type"] == "fill"][-1]["side"] == "buy"
