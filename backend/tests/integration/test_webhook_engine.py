"""A ``webhook`` engine trades only on signed, fresh, unique signals: a real manager and its engine, the real
API on loopback. A wrong secret, a replay and a stale timestamp leave no trace; 1,000 signed signals in a
burst are journaled once each and make one order per change of the signal the engine sees, nothing else;
an expired signal goes flat; after ``kill -9`` the engine resumes from its journal without taking a signal
twice."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from backend.src.core.settings import Settings
from backend.src.core.signals import sign
from backend.tests.conftest import ApiServer, ManagerProc, fast_env, wait_for
from backend.tests.integration.helpers import journal_entries, running_pid, state, wait_running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SYM = "WHKUSDT"
BOT = "bot-secret-" + os.urandom(8).hex()


def post(c: httpx.Client, url: str, body: dict[str, object], secret: str = BOT) -> int:
    raw = json.dumps(body).encode()
    return c.post(f"{url}/signals/{SYM}", content=raw,
                  headers={"X-LeviBot-Source": "bot", "X-LeviBot-Signature": sign(secret, raw)}).status_code


def orders(data_dir: Path) -> list[dict[str, object]]:
    return [e for e in journal_entries(data_dir, SYM) if e["type"] == "order"]


def taken(data_dir: Path) -> list[dict[str, object]]:
    return [e for e in journal_entries(data_dir, SYM) if e["type"] == "webhook_signal"]


def test_a_webhook_engine_trades_only_on_signed_fresh_unique_signals(
        redis_server, ns: str, data_dir: Path, r: redis.Redis, tmp_path: Path,
        start_manager: Callable[..., ManagerProc]) -> None:
    cfg = tmp_path / "hook.yaml"
    cfg.write_text("defaults: {strategy: {name: webhook}, size_usd: 1000, annual_volatility: 0.5}\n")
    env = fast_env(redis_server.url, ns, data_dir, signal_secrets=f"bot=hmac:{BOT}", signal_max_age_s=30,
                   signal_rate_per_min=100_000)
    m = ManagerProc(["--symbols", SYM, "--config", str(cfg)], env)
    api = ApiServer(env)
    try:
        pid = wait_running(r, ns, [SYM])[SYM]
        with httpx.Client(timeout=10) as c:
            now = time.time()
            assert post(c, api.url, {"target": 1, "ts": now, "id": "wrong"}, secret="x" * 32) == 401
            assert post(c, api.url, {"target": 1, "ts": now - 300, "id": "stale"}) == 409
            assert post(c, api.url, {"target": 1, "ts": "soon", "id": "bad"}) == 422
            time.sleep(1.0)
            assert not orders(data_dir) and not taken(data_dir), "refused signals leave no trace"
            assert post(c, api.url, {"target": 1, "ts": time.time(), "id": "go"}) == 202
            wait_for(lambda: float(state(r, ns, SYM).get("position", 0)) > 0, 10, what="long on the signal")
            assert post(c, api.url, {"target": 1, "ts": time.time(), "id": "go"}) == 409, "a replay"
            time.sleep(0.5)
            assert len(orders(data_dir)) == 1 and [e["id"] for e in taken(data_dir)] == ["go"]

            # 1,000 signed signals in a burst, 8 threads; targets change every 125 signals
            burst = [{"target": [0.0, 1.0, 0.5, 0.0, 1.0, 0.25, 0.0, 1.0][i // 125], "ts": time.time(),
                      "id": f"b{i:04d}"} for i in range(1000)]
            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(lambda b: post(c, api.url, b), burst))
            assert codes == [202] * 1000
        wait_for(lambda: len(taken(data_dir)) == 1001, 30, what="every signal journaled")
        time.sleep(0.5)  # a few more candles decide on the last one
        seq = taken(data_dir)
        assert len({e["id"] for e in seq}) == 1001, "each signal taken once"
        # one order per change of the signal the engine saw; each order for the latest signal before it
        entries = journal_entries(data_dir, SYM)
        latest, held, n_orders = None, None, 0
        for e in entries:
            if e["type"] == "webhook_signal":
                latest = float(e["target"])  # type: ignore[arg-type]
            elif e["type"] == "order" and str(e.get("reason", "")).startswith("webhook"):
                n_orders += 1
                assert float(e["target"]) == latest != held, (e, latest, held)  # type: ignore[arg-type]
                held = latest
        changes = sum(1 for a, b in itertools.pairwise(seq) if a["target"] != b["target"])
        assert 2 <= n_orders <= changes + 1 and n_orders == len(orders(data_dir)), (n_orders, changes)
        assert float(state(r, ns, SYM)["position"]) > 0, "the last signal (1.0) holds"
        # parity: the backtester trades the engine's journaled decisions again; execution alike, no difference
        from backend.ml.research.parity import replay  # noqa: PLC0415

        settings = Settings(data_dir=data_dir, risk_policy=env["LEVIBOT_RISK_POLICY"])  # type: ignore[arg-type]
        wait_for(lambda: int(state(r, ns, SYM).get("candles", 0)) > 5, 10, what="the candle record flushed")
        par = replay(SYM, settings, str(r.hget(f"{ns}config:{SYM}", "json")), "")
        assert par["fills_engine"] >= 2 and par["differences"] == 0, par["rows"][:5]
        assert par["attribution"]["causes"] == [] and par["attribution"]["unexplained"] == 0, par["attribution"]

        # kill -9: the restarted engine resumes from its journal, takes nothing twice
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: (p := running_pid(r, ns, SYM)) and p != pid, 20, what="restarted")
        with httpx.Client(timeout=10) as c:
            assert post(c, api.url, {"target": 0.5, "ts": time.time(), "id": "after", "expires_in_s": 1.5}) == 202
        wait_for(lambda: len(taken(data_dir)) == 1002, 20, what="the new signal journaled")
        assert len({e["id"] for e in taken(data_dir)}) == 1002
        wait_for(lambda: float(state(r, ns, SYM).get("position", 1)) == 0, 20, what="flat once it expired")
    finally:
        api.stop()
        assert m.stop() == 0
