"""Every real OHLCV file in the shared data set replayed through an engine, gaps included."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from backend.src.market.candles import load_candles
from backend.tests.conftest import OHLCV_DIR, ManagerProc, wait_for
from backend.tests.integration.helpers import fills, state, wait_running


def replay_all(start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str, data_dir: Path,
               files: dict[str, Path], source: str) -> None:
    symbols = sorted(files)
    start_manager(symbols, "--source", source, replay_speed=1e9)
    wait_running(r, ns, symbols, timeout=60)
    wait_for(lambda: all(state(r, ns, s).get("exhausted") == "1" for s in symbols), 120, interval=0.2,
             what="every replay finished")
    for sym, path in files.items():
        candles, report = load_candles(path)
        st = state(r, ns, sym)
        assert int(st["cursor_ts"]) == candles[-1].ts, sym
        assert int(st["candles"]) == report.rows, f"{sym}: every candle went through the loop"
        f = fills(data_dir, sym)
        ts = [int(x["candle_ts"]) for x in f]  # type: ignore[call-overload]
        assert ts == sorted(ts), "fills in candle order"
        assert len({x["order_id"] for x in f}) == len(f), "no order filled twice"
        known = {c.ts for c in candles}
        assert set(ts) <= known
        assert ts, f"{sym}: the strategy traded"


def test_every_5m_file(start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str, data_dir: Path) -> None:
    files = {p.name.split("-")[0].replace("_", ""): p for p in OHLCV_DIR.glob("*-5m.csv")}
    assert len(files) >= 7
    replay_all(start_manager, r, ns, data_dir, files, f"replay:{OHLCV_DIR}")


@pytest.mark.parametrize("name", ["UNITTEST_BTC-1m.csv", "UNITTEST_BTC-30m.csv"])
def test_the_1m_and_30m_files(name: str, start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str,
                              data_dir: Path) -> None:
    files = {"UNITTESTBTC": OHLCV_DIR / name}
    replay_all(start_manager, r, ns, data_dir, files, f"replay:{files['UNITTESTBTC']}")
