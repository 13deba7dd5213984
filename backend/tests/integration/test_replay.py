"""A real Binance file replayed through an engine process, killed mid-way."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import redis

from backend.src.market.candles import load_candles
from backend.tests.conftest import OHLCV_DIR, ManagerProc, wait_for
from backend.tests.integration.helpers import fills, running_pid, state, wait_running


def test_replay_resumes_after_kill9_without_retrading(
    start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str, data_dir: Path
) -> None:
    path = OHLCV_DIR / "ETH_BTC-5m.csv"
    candles, _ = load_candles(path)
    start_manager(["ETHBTC"], "--source", f"replay:{path}", "--replay-speed", "15000")
    pid = wait_running(r, ns, ["ETHBTC"])["ETHBTC"]
    wait_for(lambda: len(fills(data_dir, "ETHBTC")) >= 3, 30, what="fills")
    cursor_before = int(state(r, ns, "ETHBTC")["cursor_ts"])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (p := running_pid(r, ns, "ETHBTC")) and p != pid, 10, what="restart")
    wait_for(lambda: int(state(r, ns, "ETHBTC").get("cursor_ts", 0)) > cursor_before + 50 * 300_000, 30,
             what="replay moves on")
    f = fills(data_dir, "ETHBTC")
    ts = [int(x["candle_ts"]) for x in f]  # type: ignore[call-overload]
    assert ts == sorted(ts) and len(set(ts)) == len(ts), "no candle traded twice across the restart"
    known = {c.ts: c.open for c in candles}
    for x in f:  # every fill priced off the real candle's open (decided at the close before), slippage applied
        price = known[int(x["candle_ts"])]  # type: ignore[call-overload]
        slip = 1.0005 if x["side"] == "buy" else 0.9995
        assert abs(float(x["price"]) - price * slip) < 1e-12  # type: ignore[arg-type]
    assert ts[0] >= candles[0].ts and ts[-1] <= candles[-1].ts
