"""The dashboard's API over real HTTP: history, portfolio, models, runs (RQ jobs), guards and headers."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from backend.src.app.main import STATIC
from backend.src.app.security import CSP
from backend.src.core.portfolio import portfolio_curve
from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.models.registry import Registry
from backend.tests.conftest import ApiServer, ManagerProc, fast_env, wait_for
from backend.tests.integration.helpers import fills, running_pid, wait_running

SYMS = ["BTCUSDT", "ETHUSDT"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_page_and_headers(api: ApiServer) -> None:
    page = httpx.get(api.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text and "onclick" not in page.text  # no inline script: the CSP allows none
    for res in (page, httpx.get(api.url + "/engines/status"), httpx.get(api.url + "/static/js/app.js")):
        assert res.headers["content-security-policy"] == CSP
        assert res.headers["x-frame-options"] == "DENY"
        assert res.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP and "frame-ancestors 'none'" in CSP
    assert "set-cookie" not in page.headers


def test_vendored_chart_library_is_the_pinned_file() -> None:
    """The vendored file is exactly the recorded release (VENDORED.md: version, source, sha256) with its licence."""
    record = (STATIC / "vendor" / "VENDORED.md").read_text()
    path = STATIC / "vendor" / "lightweight-charts-5.2.1.standalone.production.js"
    assert hashlib.sha256(path.read_bytes()).hexdigest() in record
    assert "Apache License" in (STATIC / "vendor" / "LICENSE-lightweight-charts").read_text()
    js = "".join(p.read_text() for p in (STATIC / "js").rglob("*.js"))
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "eval(" not in js


def test_history_of_a_running_engine(api: ApiServer, start_manager: Callable[..., ManagerProc], r: redis.Redis,
                                     ns: str, data_dir: Path) -> None:
    start_manager(SYMS)
    pids = wait_running(r, ns, SYMS)
    wait_for(lambda: fills(data_dir, "BTCUSDT"), 30, what="a fill")
    wait_for(lambda: len(httpx.get(api.url + "/engines/BTCUSDT/fills").json()["fills"]) >= 1, 5, what="fill in api")
    c = httpx.get(api.url + "/engines/BTCUSDT/candles", params={"limit": 50}).json()["candles"]
    assert 1 <= len(c) <= 50
    assert all(a["ts"] < b["ts"] for a, b in zip(c, c[1:], strict=False))
    assert {"o", "h", "l", "c", "v", "pos", "eq", "at"} <= set(c[-1])
    api_fills = httpx.get(api.url + "/engines/BTCUSDT/fills").json()["fills"]
    journal = {f["order_id"]: f for f in fills(data_dir, "BTCUSDT")}
    for f in api_fills:  # every fill shown is a journaled fill, same price and size
        j = journal[f["order_id"]]
        assert (f["price"], f["qty"], f["side"]) == (j["price"], j["qty"], j["side"])
    recorded = (data_dir / "candles" / "BTCUSDT.csv").read_text().splitlines()
    assert recorded[0] == "ts,open,high,low,close,volume,warmup" and len(recorded) > 2

    os.kill(pids["BTCUSDT"], signal.SIGKILL)
    wait_for(lambda: running_pid(r, ns, "BTCUSDT") not in (None, pids["BTCUSDT"]), 10, what="restart")
    ev = httpx.get(api.url + "/engines/BTCUSDT/events").json()["events"]
    assert any(e["type"] == "crashed" for e in ev) and all(e["symbol"] == "BTCUSDT" for e in ev)
    assert any(e.get("symbol") == "BTCUSDT" for e in httpx.get(api.url + "/events").json()["events"])
    lines = wait_for(lambda: httpx.get(api.url + "/engines/BTCUSDT/logs", params={"lines": 500}).json()["lines"], 5)
    assert any(x.get("msg") == "engine running" for x in lines)  # type: ignore[union-attr]

    status = httpx.get(api.url + "/engines/status").json()
    assert status["totals"]["currency"] == "USD" and status["totals"]["unpriced"] == []
    assert status["totals"]["equity"] == pytest.approx(sum(e["equity"] for e in status["engines"]), abs=0.05)
    assert {e["quote"] for e in status["engines"]} == {"USDT"}
    port = httpx.get(api.url + "/portfolio").json()
    assert port["currency"] == "USD" and port["t"] and len(port["t"]) == len(port["equity"])
    assert port["daily"] and port["unpriced"] == []

    assert httpx.get(api.url + "/engines/DOGEUSDT/candles").status_code == 404
    assert httpx.get(api.url + "/engines/BTCUSDT/candles", params={"limit": 0}).status_code == 422
    assert httpx.get(api.url + "/engines/BTCUSDT/logs", params={"lines": "x"}).status_code == 422


def test_portfolio_curve_sums_in_usd_and_carries_values_forward() -> None:
    series = {"BTCUSDT": [(0.0, 100.0), (10.0, 110.0)], "ETHBTC": [(5.0, 2.0), (10.0, 3.0)], "XBTC": [(0.0, 1.0)]}
    out = portfolio_curve(series, {"BTCUSDT": 1.0, "ETHBTC": 50.0}, points=3)  # XBTC: no rate, left out
    assert out["t"] == [0.0, 5.0, 10.0]
    # before its first sample ETHBTC counts at its first value (a later start is not a jump that looks like profit)
    assert out["equity"] == [200.0, 200.0, 260.0]
    assert out["daily"] == [{"day": "1970-01-01", "pnl": 60.0}]


def test_reading_needs_the_token_beyond_loopback(redis_server: EmbeddedRedis, ns: str, data_dir: Path,
                                                 api_token: str) -> None:
    """LEVIBOT_API_HOST is what the manager binds; an API told it listens on 0.0.0.0 guards its reads."""
    server = ApiServer(fast_env(redis_server.url, ns, data_dir, api_token=api_token, api_host="0.0.0.0"))  # noqa: S104
    try:
        for path in ("/engines/status", "/portfolio", "/models", "/risk", "/runs", "/metrics"):
            assert httpx.get(server.url + path).status_code == 401, path
            assert httpx.get(server.url + path, headers=auth(api_token)).status_code == 200, path
        assert httpx.get(server.url + "/health").status_code == 200
        assert httpx.get(server.url + "/").status_code == 200  # the page itself holds no data
    finally:
        server.stop()


def test_control_and_runs_need_the_token(api: ApiServer) -> None:
    spec = {"symbols": ["BTCUSDT"], "start": "2026-01-01", "end": "2026-01-03"}
    for path, body in (("/backtests", spec), ("/models/promote", {"version": "ensemble_20260101_000000"}),
                       ("/models/rollback", {}), ("/engines/BTCUSDT/parity", {}), ("/engines/BTCUSDT/stop", {})):
        assert httpx.post(api.url + path, json=body).status_code == 401, path
        assert httpx.post(api.url + path, json=body, headers=auth("wrong")).status_code == 401, path


@pytest.mark.parametrize(("change", "field"), [
    ({"end": "2025-12-31"}, "end"), ({"strategy": "nope"}, "strategy"), ({"symbols": ["bad symbol"]}, "symbols"),
    ({"fee_bps": -1}, "fee_bps"), ({"source": "file", "symbols": ["NOFILEUSDT"]}, "symbols"),
    ({"symbols": []}, "symbols"), ({"extra": 1}, "extra"),
    ({"start": "0001-01-01", "end": "0001-12-31"}, "start"), ({"start": "9999-01-01", "end": "9999-12-31"}, "end"),
    ({"strategy": "trend_long_short.levi.yaml"}, "entry_short: shorts need market: perpetual"),
    ({"leverage": 3}, "leverage"), ({"market": "perpetual", "leverage": 500}, "leverage"),
    ({"market": "perpetual", "strategy": "buy_and_hold", "allow_short": True}, "allow_short")])
def test_a_bad_backtest_request_is_a_422_naming_the_field(api: ApiServer, api_token: str, change: dict[str, object],
                                                          field: str) -> None:
    spec = {"symbols": ["BTCUSDT"], "start": "2026-01-01", "end": "2026-01-03", **change}
    res = httpx.post(api.url + "/backtests", json=spec, headers=auth(api_token))
    assert res.status_code == 422
    assert field in json.dumps(res.json())


def test_backtest_and_parity_runs_through_rq_workers(manager_api: Callable[..., str], r: redis.Redis, ns: str,
                                                     data_dir: Path, api_token: str) -> None:
    """The manager's own API and workers: a backtest on synthetic candles and a parity run of a live engine."""
    url = manager_api(["BTCUSDT"], workers=1)
    wait_for(lambda: len(fills(data_dir, "BTCUSDT")) >= 2, 40, what="two fills")
    spec = {"symbols": ["BTCUSDT", "ETHUSDT"], "start": "2026-01-01", "end": "2026-01-04", "strategy": "momentum",
            "timeframe": "15m", "fee_bps": 5, "slippage_bps": 2}
    run_id = httpx.post(url + "/backtests", json=spec, headers=auth(api_token)).json()["id"]
    run = wait_for(lambda: (x := httpx.get(f"{url}/runs/{run_id}").json())["status"] in ("done", "error") and x, 90)
    assert run["status"] == "done", run  # type: ignore[index]
    res = run["result"]  # type: ignore[index]
    p = res["pairs"]["BTCUSDT"]
    assert 144 <= p["candles"] < 3 * 96  # three days of 15m candles, less the strategy's warm-up
    assert {"total_return", "sharpe", "max_drawdown", "trades"} <= set(p["metrics"]["strategy"])
    assert len(p["curve"]["t"]) == len(p["curve"]["equity"]) == len(p["curve"]["buy_and_hold"])
    assert max(p["curve"]["drawdown"]) <= 0.0
    assert p["fills"] and p["fills"][0]["side"] == "buy"
    listed = httpx.get(url + "/runs", params={"kind": "backtest"}).json()["runs"]
    assert listed[0]["id"] == run_id and "result" not in listed[0]
    perp = {**spec, "symbols": ["BTCUSDT"], "market": "perpetual", "leverage": 3, "allow_short": True}
    perp_id = httpx.post(url + "/backtests", json=perp, headers=auth(api_token)).json()["id"]
    run = wait_for(lambda: (x := httpx.get(f"{url}/runs/{perp_id}").json())["status"] in ("done", "error") and x, 90)
    m = run["result"]["pairs"]["BTCUSDT"]["metrics"]["strategy"]  # type: ignore[index]
    assert m["short_trades"] > 0 and m["long_trades"] > 0 and "funding" in m and m["liquidations"] >= 0, m

    par_id = httpx.post(url + "/engines/BTCUSDT/parity", headers=auth(api_token)).json()["id"]
    par = wait_for(lambda: (x := httpx.get(f"{url}/runs/{par_id}").json())["status"] in ("done", "error") and x, 90)
    assert par["status"] == "done", par  # type: ignore[index]
    out = par["result"]  # type: ignore[index]
    assert out["same_strategy"] and out["fills_engine"] >= 2
    assert out["differences"] == 0, out["rows"][:5]
    assert out["fills_engine"] == out["fills_backtest"]
    assert out["sessions"] == 1 and out["position_at_start"] == 0

    # kill -9 while holding a position: the new session starts from the journal the engine rebuilt from
    wait_for(lambda: float(r.hget(f"{ns}engine:BTCUSDT", "position") or 0) != 0, 30, interval=0.005, what="held")
    pid = running_pid(r, ns, "BTCUSDT")
    os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
    wait_for(lambda: running_pid(r, ns, "BTCUSDT") not in (None, pid), 10, what="restart")
    before = len(fills(data_dir, "BTCUSDT"))
    wait_for(lambda: len(fills(data_dir, "BTCUSDT")) >= before + 2, 40, what="fills after the restart")
    par_id = httpx.post(url + "/engines/BTCUSDT/parity", headers=auth(api_token)).json()["id"]
    par = wait_for(lambda: (x := httpx.get(f"{url}/runs/{par_id}").json())["status"] in ("done", "error") and x, 90)
    out = par["result"]  # type: ignore[index]
    assert out["sessions"] == 2 and out["fills_engine"] >= 2, out  # sessions are kept across restarts
    assert out["differences"] == 0, out["rows"][:5]  # the latest session, from the journal the engine rebuilt from
    a = out["attribution"]  # both sessions as one uninterrupted backtest: the restart counted, the gap explained
    assert a["restarts"] == 1 and abs(sum(c["amount"] for c in a["causes"]) - a["gap"]) < 1e-6, a["causes"]
    assert httpx.get(url + "/runs/0123456789abcdef").status_code == 404
    assert httpx.get(url + "/runs/nothex").status_code == 422



def test_models_page_data_and_promote_rollback_through_the_manager(manager_api: Callable[..., str], data_dir: Path,
                                                                  api_token: str) -> None:
    now = [1.7e9]
    reg = Registry(data_dir / "models", clock=lambda: now[0])

    def write(d: Path) -> list[Path]:
        (d / "model.txt").write_text("weights")
        return [d / "model.txt"]

    v1 = reg.save(write, {"backtest_sharpe": 1.5, "accuracy": 0.53, "symbols": ["BTCUSDT"]})
    now[0] += 60
    v2 = reg.save(write, {"backtest_sharpe": 2.0, "accuracy": 0.55, "symbols": ["BTCUSDT"]})
    reg.promote(v1)
    url = manager_api(["BTCUSDT"])
    m = httpx.get(url + "/models").json()
    assert m["current"] == v1 and [v["version"] for v in m["versions"]] == [v2, v1]
    assert m["versions"][1]["production"] and m["versions"][0]["backtest_sharpe"] == 2.0
    res = httpx.post(url + "/models/promote", json={"version": v2}, headers=auth(api_token))
    assert res.status_code == 200, res.text
    assert reg.current() == v2 and httpx.get(url + "/models").json()["promotions"][0]["to"] == v2
    res = httpx.post(url + "/models/rollback", headers=auth(api_token))
    assert res.status_code == 200 and v1 in res.json()["detail"]
    assert reg.current() == v1
    missing = httpx.post(url + "/models/promote", json={"version": "ensemble_20200101_000000"},
                         headers=auth(api_token))
    assert missing.status_code == 409 and "not found" in missing.json()["detail"]
    assert httpx.post(url + "/models/promote", json={"version": "../etc"}, headers=auth(api_token)).status_code == 422
    assert reg.current() == v1


def test_replay_of_a_backtest_file_runs_a_real_engine(manager_api: Callable[..., str], r: redis.Redis, ns: str,
                                                      data_dir: Path, api_token: str) -> None:
    from backend.src.market.candles import load_candles
    from backend.tests.conftest import OHLCV_DIR

    src = OHLCV_DIR / "ETH_BTC-5m.csv"
    (data_dir / "ohlcv").mkdir(parents=True)
    (data_dir / "ohlcv" / src.name).write_bytes(src.read_bytes())
    candles, _ = load_candles(src)
    day = 86_400_000
    start = time.strftime("%Y-%m-%d", time.gmtime(candles[0].ts / 1000))
    end = time.strftime("%Y-%m-%d", time.gmtime((candles[-1].ts + day) / 1000))
    url = manager_api(["BTCUSDT"], workers=1)
    assert "ETHBTC" in httpx.get(url + "/backtests/options").json()["files"]
    spec = {"symbols": ["ETHBTC"], "source": "file", "start": start, "end": end, "strategy": "sma_crossover",
            "size": 0.5, "initial_equity": 10}
    run_id = httpx.post(url + "/backtests", json=spec, headers=auth(api_token)).json()["id"]
    run = wait_for(lambda: (x := httpx.get(f"{url}/runs/{run_id}").json())["status"] in ("done", "error") and x, 120)
    assert run["status"] == "done", run  # type: ignore[index]
    assert run["result"]["pairs"]["ETHBTC"]["candles"] > 1000  # type: ignore[index]

    bad = httpx.post(url + "/replays", json={"run_id": run_id, "symbol": "LTCBTC"}, headers=auth(api_token))
    assert bad.status_code == 422 and "symbol" in bad.text
    res = httpx.post(url + "/replays", json={"run_id": run_id, "symbol": "ETHBTC", "speed": 30000},
                     headers=auth(api_token))
    assert res.status_code == 200, res.text
    assert "as R1ETHBTC at 30000x" in res.json()["detail"]
    wait_running(r, ns, ["R1ETHBTC"])
    wait_for(lambda: fills(data_dir, "R1ETHBTC"), 60, what="the replay trades")
    assert r.hget(f"{ns}engine:R1ETHBTC", "source") == "replay:ETH_BTC-5m.csv"
    assert httpx.post(url + "/config/reload", headers=auth(api_token)).status_code == 200
    time.sleep(1.0)
    assert r.hget(f"{ns}engine:R1ETHBTC", "status") == "running"  # a reload keeps replays
    status = {e["symbol"]: e for e in httpx.get(url + "/engines/status").json()["engines"]}
    assert status["R1ETHBTC"]["strategy"] == "sma_crossover" and status["R1ETHBTC"]["quote"] == "BTC"


def test_a_backtest_longer_than_the_job_timeout_fails_saying_so(manager_api: Callable[..., str],
                                                               api_token: str) -> None:
    """LEVIBOT_JOB_TIMEOUT_S applies to every RQ job: the largest backtest allowed is stopped at it."""
    url = manager_api(["BTCUSDT"], workers=1, job_timeout_s=2)
    spec = {"symbols": [f"T{i}USDT" for i in range(10)], "start": "2025-01-01", "end": "2026-01-01",
            "timeframe": "1m"}
    run_id = httpx.post(url + "/backtests", json=spec, headers=auth(api_token)).json()["id"]
    run = wait_for(lambda: (x := httpx.get(f"{url}/runs/{run_id}").json())["status"] in ("done", "error") and x, 60)
    assert run["status"] == "error" and "timed out after 2s (LEVIBOT_JOB_TIMEOUT_S)" in run["error"], run  # type: ignore[index]
