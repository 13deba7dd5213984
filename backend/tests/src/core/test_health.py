"""Stall verdicts: a floor of 10 s, so fast candles on a loaded machine do not flap."""

from __future__ import annotations

import logging

import pytest
import redis

from backend.src.core.health import STALL_FLOOR_S, is_stalled, stall_threshold_s
from backend.src.core.keys import Keys
from backend.src.core.settings import Settings
from backend.src.supervisor.monitor import Monitor
from backend.src.supervisor.state_store import StateStore


def running(period: float, last: float) -> dict[str, str]:
    return {"status": "running", "candle_period_s": str(period), "last_candle_at": str(last)}


@pytest.mark.parametrize("idle_s", [0.2, 1.0, 5.0, 9.9])
def test_fast_candles_a_few_periods_late_are_not_stalled(idle_s: float) -> None:
    # 0.05 s candles: 3 periods is 0.15 s, which a busy 2-core machine misses all the time.
    assert not is_stalled(running(0.05, 1000.0), 0.1, 1000.0 + idle_s, 5.0)


def test_stalled_after_the_floor_or_three_periods() -> None:
    assert is_stalled(running(0.05, 1000.0), 0.1, 1000.0 + STALL_FLOOR_S + 0.1, 5.0)
    assert stall_threshold_s(60.0) == 180.0
    assert not is_stalled(running(60.0, 1000.0), 0.1, 1000.0 + 170.0, 5.0)
    assert is_stalled(running(60.0, 1000.0), 0.1, 1000.0 + 181.0, 5.0)


def test_a_flapping_engine_alerts_once_per_window(r: redis.Redis, ns: str, settings: Settings,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    keys = Keys(ns)
    now = [1000.0]
    mon = Monitor(r, keys, StateStore(r, keys), settings, "o", lambda: now[0])
    caplog.set_level(logging.INFO, logger="backend.src.supervisor.monitor")
    for i in range(20):  # stalled, healthy, stalled, ... within one alert window
        now[0] = 1000.0 + i
        mon.check_stall("BTCUSDT", running(0.05, now[0] - 30 if i % 2 == 0 else now[0]), 0.1, now[0])
    alerts = [rec for rec in caplog.records if getattr(rec, "alert", False)]
    assert len(alerts) == 1
    now[0] += settings.alert_window_s + 1
    mon.check_stall("BTCUSDT", running(0.05, now[0] - 30), 0.1, now[0])
    assert len([rec for rec in caplog.records if getattr(rec, "alert", False)]) == 2
