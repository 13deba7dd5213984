"""The API over real HTTP on loopback, against the real Redis and a real manager."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from backend.src.core.health import format_uptime
from backend.tests.conftest import FAST_CONFIG, ApiServer, ManagerProc, fast_env, wait_for
from backend.tests.integration.helpers import running_pid, state, wait_running

SYMS = ["BTCUSDT", "ETHUSDT"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_status_in_the_seed_shape(api: ApiServer, start_manager: Callable[..., ManagerProc], r: redis.Redis,
                                  ns: str) -> None:
    start_manager(SYMS)
    pids = wait_running(r, ns, SYMS)
    body = httpx.get(api.url + "/engines/status").json()
    assert body["total"] == 2 and body["running"] == 2
    assert {"stopped", "crashed", "failed", "restarting", "stalled", "global_stop"} <= set(body)
    e = {x["symbol"]: x for x in body["engines"]}
    assert e["BTCUSDT"]["pid"] == pids["BTCUSDT"] and e["BTCUSDT"]["status"] == "running"
    for key in ("uptime", "restarts", "last_error", "last_heartbeat_age_s", "position", "pnl"):
        assert key in e["BTCUSDT"]
    assert e["BTCUSDT"]["last_heartbeat_age_s"] < 1.0
    started = float(r.hget(f"{ns}engine:BTCUSDT", "started_at") or 0)
    assert started > 0
    expected = {format_uptime(time.time() - started + d) for d in (-1.0, 0.0, 1.0)}  # the clock ticks meanwhile
    assert e["BTCUSDT"]["uptime"] in expected, (e["BTCUSDT"]["uptime"], expected)
    one = httpx.get(api.url + "/engines/ETHUSDT").json()
    assert one["pid"] == pids["ETHUSDT"]
    assert httpx.get(api.url + "/engines/DOGEUSDT").status_code == 404
    bad = httpx.get(api.url + "/engines/bad-symbol!")
    assert bad.status_code in (404, 422)
    assert httpx.get(api.url + "/health").json() == {"status": "ok", "redis": "ok"}


def test_kill9_shows_in_status_and_metrics(api: ApiServer, start_manager: Callable[..., ManagerProc],
                                           r: redis.Redis, ns: str) -> None:
    start_manager(SYMS)
    pids = wait_running(r, ns, SYMS)
    os.kill(pids["BTCUSDT"], signal.SIGKILL)
    wait_for(lambda: (p := running_pid(r, ns, "BTCUSDT")) and p != pids["BTCUSDT"], 10, what="back")
    e = httpx.get(api.url + "/engines/BTCUSDT").json()
    assert e["restarts"] == 1 and "SIGKILL" in e["last_error"]

    def scrape() -> tuple[dict, dict]:
        fams = {f.name: f for f in text_string_to_metric_families(httpx.get(api.url + "/metrics").text)}
        return fams, {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}

    # The engine writes "running" itself; the watchdog records the recovery when it reads that heartbeat,
    # one loop step later, so the histogram may trail the status by a step.
    wait_for(lambda: scrape()[1].get(("levibot_watchdog_recovery_seconds_count", ())) == 1.0, 5,
             what="recovery observed")
    r.rpush(f"rq:queue:{ns}sentiment", "job-a", "job-b")  # what RQ's enqueue leaves for a worker
    fams, samples = scrape()
    assert samples[("levibot_rq_queue_jobs", (("queue", "sentiment"),))] == 2.0
    assert samples[("levibot_rq_queue_jobs", (("queue", "backtest"),))] == 0.0
    assert samples[("levibot_engine_up", (("symbol", "BTCUSDT"),))] == 1.0
    assert samples[("levibot_engine_restarts_total", (("symbol", "BTCUSDT"),))] == 1.0
    assert samples[("levibot_engines", (("status", "running"),))] == 2.0
    assert samples[("levibot_watchdog_recovery_seconds_count", ())] == 1.0
    assert samples[("levibot_watchdog_recovery_seconds_bucket", (("le", "+Inf"),))] == 1.0
    assert samples[("levibot_watchdog_recovery_seconds_sum", ())] < 2.0
    assert samples[("levibot_global_stop_active", ())] == 0.0
    for name in ("levibot_engine_heartbeat_age_seconds", "levibot_engine_pnl_usd", "levibot_manager_up"):
        assert name in fams


def test_control_requires_a_token(api: ApiServer, start_manager: Callable[..., ManagerProc], r: redis.Redis,
                                  ns: str, api_token: str) -> None:
    start_manager(SYMS)
    wait_running(r, ns, SYMS)
    assert httpx.post(api.url + "/engines/BTCUSDT/stop").status_code == 401
    assert httpx.post(api.url + "/engines/BTCUSDT/stop", headers=auth("nope")).status_code == 401
    res = httpx.post(api.url + "/engines/BTCUSDT/stop", headers=auth(api_token), json={"wait_s": "soon"})
    assert res.status_code == 422 and "wait_s" in res.text
    res = httpx.post(api.url + "/engines/BTCUSDT/stop", headers=auth(api_token), json={"bogus": 1})
    assert res.status_code == 422 and "bogus" in res.text
    assert httpx.post(api.url + "/engines/BTCUSDT/explode", headers=auth(api_token)).status_code == 422
    assert state(r, ns, "BTCUSDT")["status"] == "running", "nothing happened"


def test_control_disabled_without_token(redis_server, ns: str, data_dir: Path) -> None:
    server = ApiServer(fast_env(redis_server.url, ns, data_dir))
    try:
        res = httpx.post(server.url + "/engines/BTCUSDT/stop", headers=auth("anything"))
        assert res.status_code == 403 and "LEVIBOT_API_TOKEN" in res.text
        assert httpx.post(server.url + "/config/reload").status_code == 403
    finally:
        server.stop()


def test_stop_start_restart_through_the_api(api: ApiServer, start_manager: Callable[..., ManagerProc],
                                            r: redis.Redis, ns: str, api_token: str) -> None:
    start_manager(SYMS)
    pids = wait_running(r, ns, SYMS)
    res = httpx.post(api.url + "/engines/BTCUSDT/stop", headers=auth(api_token), json={"wait_s": 5})
    assert res.status_code == 200 and res.json()["status"] == "done", res.text
    wait_for(lambda: state(r, ns, "BTCUSDT")["status"] == "stopped", 10, what="stopped")
    wait_for(lambda: httpx.get(api.url + "/engines/status").json()["stopped"] == 1, 2, what="status shows it")
    res = httpx.post(api.url + "/engines/BTCUSDT/start", headers=auth(api_token))
    assert res.status_code == 200
    new = wait_for(lambda: running_pid(r, ns, "BTCUSDT"), 10, what="started")
    res = httpx.post(api.url + "/engines/ETHUSDT/restart", headers=auth(api_token))
    assert res.status_code == 200
    wait_for(lambda: (p := running_pid(r, ns, "ETHUSDT")) and p != pids["ETHUSDT"], 10, what="restarted")
    got = httpx.get(api.url + f"/commands/{res.json()['command_id']}").json()
    assert got["status"] == "done" and got["action"] == "restart"
    wait_for(lambda: httpx.get(api.url + "/engines/ETHUSDT").json()["last_command"] == "restart: done (restarting)",
             2, what="result visible in the status")
    assert new != pids["BTCUSDT"]
    assert state(r, ns, "ETHUSDT")["restarts"] == "0", "an operator restart is not a crash"


def test_command_sent_while_manager_is_down_is_not_lost(
    api: ApiServer, start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str, api_token: str
) -> None:
    m = start_manager(SYMS)
    wait_running(r, ns, SYMS)
    os.kill(m.pid, signal.SIGKILL)
    m.proc.wait()
    res = httpx.post(api.url + "/engines/ETHUSDT/stop", headers=auth(api_token), json={"wait_s": 0})
    assert res.status_code == 202 and res.json()["status"] == "pending"
    command_id = res.json()["command_id"]
    start_manager(SYMS)
    wait_for(lambda: httpx.get(api.url + f"/commands/{command_id}").json()["status"] == "done", 20,
             what="queued command carried out after the manager came back")
    wait_for(lambda: state(r, ns, "ETHUSDT")["status"] == "stopped", 10, what="stopped")


def test_config_reload_applies_without_restart_and_rejects_bad_config(
    api: ApiServer, start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str, api_token: str,
    engine_config: Path,
) -> None:
    start_manager(SYMS)
    pids = wait_running(r, ns, SYMS)
    engine_config.write_text(FAST_CONFIG.replace("size_usd: 1000", "size_usd: 1000\n  fee_bps: -3"))
    res = httpx.post(api.url + "/config/reload", headers=auth(api_token))
    assert res.status_code == 409 and "fee_bps" in res.json()["detail"], res.text
    engine_config.write_text(FAST_CONFIG.replace("fast: 2, slow: 5", "fast: 3, slow: 8"))
    t0 = time.monotonic()
    res = httpx.post(api.url + "/config/reload", headers=auth(api_token))
    assert res.status_code == 200 and "changed ['BTCUSDT', 'ETHUSDT']" in res.json()["detail"], res.text
    wait_for(lambda: all(state(r, ns, s).get("config_version") == "2" for s in SYMS), 2.0, what="applied in 2 s")
    assert time.monotonic() - t0 < 2.5
    assert {s: running_pid(r, ns, s) for s in SYMS} == pids, "same processes"


@pytest.fixture
def symbols_config(tmp_path: Path) -> Path:
    p = tmp_path / "fleet.yaml"
    p.write_text(FAST_CONFIG + "symbols:\n  BTCUSDT: {}\n  ETHUSDT: {}\n")
    return p


def test_config_file_change_adds_and_removes_engines(
    redis_server, ns: str, data_dir: Path, r: redis.Redis, symbols_config: Path
) -> None:
    m = ManagerProc(["--config", str(symbols_config)], fast_env(redis_server.url, ns, data_dir))
    try:
        pids = wait_running(r, ns, SYMS)
        time.sleep(1.1)  # mtime granularity: make the change visible as a change
        symbols_config.write_text(FAST_CONFIG.replace("size_usd: 1000", "size_usd: 1500")
                                  + "symbols:\n  BTCUSDT: {}\n  SOLUSDT: {}\n  ETHUSDT: {enabled: false}\n")
        wait_for(lambda: running_pid(r, ns, "SOLUSDT"), 10, what="SOLUSDT spawned")
        wait_for(lambda: state(r, ns, "ETHUSDT")["status"] == "stopped", 10, what="ETHUSDT stopped")
        wait_for(lambda: state(r, ns, "BTCUSDT").get("config_version") == "2", 5, what="BTCUSDT reloaded")
        assert running_pid(r, ns, "BTCUSDT") == pids["BTCUSDT"]
        symbols_config.write_text("defaults: {size_usd: -1}\nsymbols:\n  BTCUSDT: {}\n")
        time.sleep(2.5)
        assert running_pid(r, ns, "SOLUSDT") and running_pid(r, ns, "BTCUSDT") == pids["BTCUSDT"], "bad config ignored"
        events = [f for _, f in r.xrange(f"{ns}events")]
        assert any(e["type"] == "config_rejected" and "defaults.size_usd" in e["reason"] for e in events)
    finally:
        assert m.stop() == 0


def test_health_is_503_when_redis_is_down(ns: str, data_dir: Path) -> None:
    server = ApiServer(fast_env("redis://127.0.0.1:1/0", ns, data_dir))
    try:
        res = httpx.get(server.url + "/health")
        assert res.status_code == 503 and "redis unavailable" in res.text
        assert httpx.get(server.url + "/engines/status").status_code == 503
    finally:
        server.stop()


def test_a_short_perpetual_shows_side_leverage_liquidation_and_exposure(
        api: ApiServer, start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str, tmp_path: Path) -> None:
    config = tmp_path / "perp.yaml"
    config.write_text(FAST_CONFIG + "  market: perpetual\n  leverage: 4\n  funding_rate: 0.0001\n"
                      "  strategy: {name: sma_crossover, fast: 2, slow: 5, allow_short: true}\n")
    start_manager(["SHORTUSDT"], "--config", str(config))
    wait_running(r, ns, ["SHORTUSDT"])
    wait_for(lambda: state(r, ns, "SHORTUSDT").get("side") == "short", 20, what="a short")
    e = httpx.get(api.url + "/engines/SHORTUSDT").json()
    assert e["market"] == "perpetual" and e["leverage"] == 4 and e["funding"] == 0  # no funding time on this feed
    if e["side"] == "short":  # the feed moves on between the two reads
        assert e["position"] < 0 and e["liquidation_price"] > e["avg_price"] > 0
        assert e["margin"] == pytest.approx(abs(e["position"]) * e["avg_price"] / 4, rel=1e-6)
    fams = {f.name: f for f in text_string_to_metric_families(httpx.get(api.url + "/metrics").text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}
    assert samples[("levibot_engine_funding_usd_total", (("symbol", "SHORTUSDT"),))] == 0
    gross, net = samples[("levibot_exposure_gross_usd", ())], samples[("levibot_exposure_net_usd", ())]
    assert gross >= 0 and abs(net) == pytest.approx(gross)  # one symbol: net is its signed size
