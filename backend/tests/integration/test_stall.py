"""Alive but stuck: heartbeats keep coming, candles stop. Reported in status, metrics and events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from backend.tests.conftest import ApiServer, ManagerProc, wait_for
from backend.tests.integration.helpers import events, wait_running


def gap_file(path: Path) -> Path:
    """60 one-minute candles, then nothing for 10 hours (a feed outage), then more."""
    rows = ["timestamp,open,high,low,close,volume"]
    ts = [i * 60_000 for i in range(60)] + [36_000_000 + i * 60_000 for i in range(60)]
    rows += [f"{t},100,101,99,100.5,10" for t in ts]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_stalled_engine_is_reported(api: ApiServer, start_manager: Callable[..., ManagerProc], r: redis.Redis,
                                    ns: str, tmp_path: Path) -> None:
    src = gap_file(tmp_path / "BTCUSDT-1m.csv")
    start_manager(["BTCUSDT"], "--source", f"replay:{tmp_path}/{{symbol}}-1m.csv", "--replay-speed", "600")
    wait_running(r, ns, ["BTCUSDT"])
    assert src.exists()
    body = wait_for(lambda: (b := httpx.get(api.url + "/engines/status").json())["stalled"] == 1 and b, 40,
                    what="stall reported")
    e = {x["symbol"]: x for x in body["engines"]}["BTCUSDT"]
    assert e["stalled"] and e["status"] == "running" and e["last_heartbeat_age_s"] < 1
    wait_for(lambda: 'levibot_engine_stalled{symbol="BTCUSDT"} 1.0' in httpx.get(api.url + "/metrics").text, 5,
             what="stall metric")
    wait_for(lambda: events(r, ns, "stalled", "BTCUSDT"), 5, what="stalled event")
