"""Engines on a live exchange feed: the real ccxt client against the local Binance stand-in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from backend.src.core.settings import REPO_ROOT
from backend.tests.conftest import FAST_CONFIG, ManagerProc, fast_env, wait_for
from backend.tests.fakes.binance_server import BinanceServer, generated
from backend.tests.integration.helpers import fills, running_pid, state, wait_running

LIVE_CONFIG = FAST_CONFIG + "  timeframe: 1s\n"


@pytest.fixture
def binance() -> Iterator[BinanceServer]:
    server = BinanceServer({"BTCUSDT": generated(1000), "ETHUSDT": generated(1000, 50.0)}, timeframe="1s")
    yield server
    server.close()


def test_live_engines_trade_and_recover(binance: BinanceServer, start_manager: Callable[..., ManagerProc],
                                        engine_config: Path, r: redis.Redis, ns: str, data_dir: Path) -> None:
    engine_config.write_text(LIVE_CONFIG)
    start_manager(["BTCUSDT", "ETHUSDT"], "--source", "live:binance", exchange_base_url=binance.url,
                  live_poll_delay_s=0.05, exchange_timeout_s=1)
    pids = wait_running(r, ns, ["BTCUSDT", "ETHUSDT"])
    wait_for(lambda: len(fills(data_dir, "BTCUSDT")) >= 2, 30, what="fills on live candles")
    f = fills(data_dir, "BTCUSDT")[0]
    assert f["source"] == "live:binance" and int(f["candle_ts"]) % 1000 == 0  # type: ignore[call-overload]
    binance.down = True  # exchange outage: engines stay up (heartbeats), then catch up
    wait_for(lambda: state(r, ns, "BTCUSDT").get("status") == "running", 2)
    before = int(state(r, ns, "BTCUSDT")["cursor_ts"])
    import time

    time.sleep(2.5)
    binance.down = False
    wait_for(lambda: int(state(r, ns, "BTCUSDT")["cursor_ts"]) > before + 2000, 10, what="caught up")
    assert running_pid(r, ns, "BTCUSDT") == pids["BTCUSDT"], "an exchange outage is not a crash"
    os.kill(pids["ETHUSDT"], signal.SIGKILL)
    wait_for(lambda: (p := running_pid(r, ns, "ETHUSDT")) and p != pids["ETHUSDT"], 10, what="restart")


@pytest.mark.parametrize(("source", "symbols", "message"), [
    ("live:notanexchange", "BTCUSDT", "unknown exchange 'notanexchange'"),
    ("live:binance", "BTCUSDT,DOGEUSDT", "DOGEUSDT is not a spot market on binance"),
])
def test_bad_exchange_or_symbol_is_one_line_exit_2(binance: BinanceServer, source: str, symbols: str,
                                                    message: str, redis_server, ns: str, data_dir: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "backend.src.engine_manager", "--symbols", symbols, "--source", source],
                         env=fast_env(redis_server.url, ns, data_dir, exchange_base_url=binance.url),
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and message in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert not data_dir.exists()


def test_live_trading_sends_real_orders(binance: BinanceServer, start_manager: Callable[..., ManagerProc],
                                        engine_config: Path, r: redis.Redis, ns: str, data_dir: Path) -> None:
    from backend.tests.fakes.binance_server import API_KEY, API_SECRET

    binance.balances.update({"USDT": 100_000.0})
    engine_config.write_text(LIVE_CONFIG)
    start_manager(["BTCUSDT"], "--source", "live:binance", "--live", exchange_base_url=binance.url,
                  live_poll_delay_s=0.05, exchange_timeout_s=1, exchange_api_key=API_KEY, exchange_secret=API_SECRET)
    wait_running(r, ns, ["BTCUSDT"])
    wait_for(lambda: len(fills(data_dir, "BTCUSDT")) >= 2, 30, what="live fills")
    placed = [o for o in binance.orders.values() if o["status"] == "FILLED"]
    journaled = fills(data_dir, "BTCUSDT")
    assert len(placed) >= 2
    assert sum(float(o["executedQty"]) for o in placed) == pytest.approx(
        sum(float(f["qty"]) for f in journaled), rel=1e-6)  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--source", "synthetic", "--live"], {}, "--live: real orders need --source live:EXCHANGE"),
    (["--source", "live:binance", "--live"], {}, "--live: set LEVIBOT_EXCHANGE_API_KEY and LEVIBOT_EXCHANGE_SECRET"),
])
def test_live_needs_flag_source_and_keys(args: list[str], env: dict[str, str], message: str, redis_server, ns: str,
                                         data_dir: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "backend.src.engine_manager", "--symbols", "BTCUSDT", *args],
                         env=fast_env(redis_server.url, ns, data_dir, **env), cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_keys_without_the_flag_stay_on_paper(binance: BinanceServer, start_manager: Callable[..., ManagerProc],
                                             engine_config: Path, r: redis.Redis, ns: str, data_dir: Path) -> None:
    from backend.tests.fakes.binance_server import API_KEY, API_SECRET

    engine_config.write_text(LIVE_CONFIG)
    start_manager(["BTCUSDT"], "--source", "live:binance", exchange_base_url=binance.url, live_poll_delay_s=0.05,
                  exchange_api_key=API_KEY, exchange_secret=API_SECRET, live_trading="true")
    wait_running(r, ns, ["BTCUSDT"])
    wait_for(lambda: len(fills(data_dir, "BTCUSDT")) >= 1, 30, what="paper fills")
    assert binance.orders == {}, "no --live: not a single real order, whatever the environment says"


@pytest.mark.parametrize("policy", ["flatten", "hold"])
def test_live_failed_engine_is_flattened_on_the_exchange_or_left_under_its_stop(
        policy: str, binance: BinanceServer, start_manager: Callable[..., ManagerProc], engine_config: Path,
        r: redis.Redis, ns: str, data_dir: Path) -> None:
    from backend.tests.fakes.binance_server import API_KEY, API_SECRET
    from backend.tests.integration.test_on_failed import kill_until_failed

    binance.balances.update({"USDT": 100_000.0})
    engine_config.write_text(LIVE_CONFIG + f"  on_failed: {policy}\n")
    start_manager(["BTCUSDT"], "--source", "live:binance", "--live", exchange_base_url=binance.url,
                  live_poll_delay_s=0.05, exchange_timeout_s=1, exchange_api_key=API_KEY, exchange_secret=API_SECRET)
    wait_for(lambda: binance.resting_stops(), 30, what="a protective stop on the exchange")
    kill_until_failed(r, ns, "BTCUSDT")
    if policy == "flatten":
        wait_for(lambda: state(r, ns, "BTCUSDT").get("on_failed") == "flattened", 60, what="flattened")
        assert binance.balances["BTC"] == pytest.approx(0.0, abs=1e-8) and binance.resting_stops() == []
    else:
        wait_for(lambda: state(r, ns, "BTCUSDT").get("on_failed") == "holding", 10, what="holding")
        (stop,) = binance.resting_stops()
        assert float(stop["origQty"]) == pytest.approx(binance.balances["BTC"]), "the whole position is covered"


def test_a_live_perpetual_engine_trades_both_ways_on_the_usdt_m_stand_in(
        start_manager: Callable[..., ManagerProc], engine_config: Path, r: redis.Redis, ns: str,
        data_dir: Path) -> None:
    """A real engine process, ``--live`` on a perpetual: isolated margin and leverage set, shorts, reduce-only
    turns, the closePosition stop on the exchange, and the journal's position the exchange's."""
    from backend.tests.fakes.binance_futures import BinanceFuturesServer  # noqa: PLC0415
    from backend.tests.fakes.binance_server import API_KEY, API_SECRET  # noqa: PLC0415
    from backend.tests.integration.helpers import journal_position  # noqa: PLC0415

    fapi = BinanceFuturesServer({"BTCUSDT": generated(1000, 20_000.0)}, timeframe="1s", wallet=100_000.0)
    try:
        engine_config.write_text(LIVE_CONFIG + "  market: perpetual\n  leverage: 3\n  liquidation_buffer_atr: 0\n"
                                 "  protective_stop_pct: 50\n"
                                 "  strategy: {name: sma_crossover, fast: 2, slow: 5, allow_short: true}\n")
        # ccxt paces the futures endpoints by their weights (the income and forced-order reads weigh 20): a
        # candle can wait on it for a second or two, longer than the fast tests' 2 s heartbeat timeout
        m = start_manager(["BTCUSDT"], "--source", "live:binance", "--live", exchange_base_url=fapi.url,
                          live_poll_delay_s=0.05, exchange_timeout_s=1, exchange_api_key=API_KEY,
                          exchange_secret=API_SECRET, heartbeat_timeout_s=20)
        wait_running(r, ns, ["BTCUSDT"])
        wait_for(lambda: fapi.position.get("BTCUSDT", (0.0, 0.0))[0] < 0, 60, what="a short on the exchange")
        wait_for(lambda: any(o["reduceOnly"] for o in fapi.orders.values()), 60, what="a reduce-only turn")
        assert fapi.margin_type["BTCUSDT"] == "ISOLATED" and fapi.leverage["BTCUSDT"] == 3
        assert any(a["closePosition"] for a in fapi.algos.values()), "a stop rests on the exchange"
        assert state(r, ns, "BTCUSDT")["market"] == "perpetual" and state(r, ns, "BTCUSDT")["restarts"] == "0"
        assert m.stop() == 0
        held = fapi.position.get("BTCUSDT", (0.0, 0.0))[0]
        assert journal_position(data_dir, "BTCUSDT") == pytest.approx(held, abs=1e-9)
    finally:
        fapi.close()
