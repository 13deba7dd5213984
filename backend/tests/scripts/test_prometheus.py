"""Alert rules under promtool, and a real Prometheus scraping the real API."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from backend.src.core.redis_launcher import free_port
from backend.src.core.settings import REPO_ROOT
from backend.tests.conftest import ApiServer, ManagerProc, require_binary, wait_for
from backend.tests.integration.helpers import wait_running

RULES = REPO_ROOT / "backend" / "scripts" / "prometheus"


def test_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    promtool = require_binary("promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES / "alerts.yml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True, text=True)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr
    cfg = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=RULES, capture_output=True, text=True)
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr


def test_real_prometheus_scrapes_the_api(
    api: ApiServer, start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str, tmp_path: Path
) -> None:
    prometheus = require_binary("prometheus")
    start_manager(["BTCUSDT", "ETHUSDT"])
    wait_running(r, ns, ["BTCUSDT", "ETHUSDT"])
    port = free_port()
    (tmp_path / "alerts.yml").write_text((RULES / "alerts.yml").read_text())
    (tmp_path / "prometheus.yml").write_text(
        (RULES / "prometheus.yml").read_text()
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("127.0.0.1:8000", f"127.0.0.1:{api.port}")
    )
    proc = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        def query(q: str) -> list[dict[str, object]]:
            try:
                res = httpx.get(f"{base}/api/v1/query", params={"query": q}, timeout=2).json()
            except (httpx.HTTPError, ValueError):  # not up yet, or still starting (a plain-text 503)
                return []
            return res["data"]["result"] if res.get("status") == "success" else []

        up = wait_for(lambda: len(query("levibot_engine_up == 1")) == 2 and query("levibot_engine_up"), 30,
                      interval=0.5, what="prometheus scraped levibot_engine_up")
        assert {x["metric"]["symbol"] for x in up} == {"BTCUSDT", "ETHUSDT"}  # type: ignore[index]
        assert query('up{job="levibot"}')[0]["value"][1] == "1"  # type: ignore[index]
        for name in ("levibot_engine_restarts_total", "levibot_engine_heartbeat_age_seconds",
                     "levibot_engine_pnl_usd", "levibot_engines", "levibot_watchdog_recovery_seconds_count",
                     "levibot_global_stop_active"):
            assert query(name), f"{name} not scraped"
        rules = httpx.get(f"{base}/api/v1/rules", timeout=2).json()["data"]["groups"]
        assert {rule["name"] for g in rules for rule in g["rules"]} >= {"LeviBotEngineDown", "LeviBotCrashLoop"}
        time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
