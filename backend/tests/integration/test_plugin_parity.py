"""Backtest = live for Python plugins: real engines trade the example package's strategies (an event-driven
long/short breakout on a perpetual, by its entry-point name; a vectorized z-score reversion on spot, by
``module:Class``) over replayed candle files, and ``backtest --full --strategy module:Class`` over the same
files journals the same fills, candle for candle. Each engine checked its plugin before trading it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from backend.src.core.settings import REPO_ROOT
from backend.tests.conftest import ManagerProc, fast_env
from backend.tests.integration.helpers import journal_entries, replay_all
from backend.tests.integration.test_perpetual_parity import assert_same_fills, read_csv, write_candles

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
PLUGINS = {  # symbol -> (its config, the --strategy the backtest is given)
    "PBRKUSDT": ("{market: perpetual, leverage: 2, funding_rate: 0.0001, "
                 "strategy: {name: channel_breakout, lookback: 24, allow_short: true}}",
                 "levibot_examples.breakout:ChannelBreakout"),
    "ZSCRUSDT": ("{strategy: {python: 'levibot_examples.zscore:ZScoreReversion', params: {lookback: 48}}}",
                 "levibot_examples.zscore:ZScoreReversion"),
}


def engine_log(data_dir: Path, symbol: str) -> list[dict[str, object]]:
    return [json.loads(line) for p in sorted((data_dir / "logs").glob(f"engine-{symbol}-*.jsonl"))
            for line in p.read_text().splitlines() if line.strip()]


def test_the_example_plugins_trade_alike_in_engines_and_the_backtester(
        redis_server, ns: str, data_dir: Path, r: redis.Redis, tmp_path: Path,
        start_manager: Callable[..., ManagerProc]) -> None:
    candles = tmp_path / "candles"
    candles.mkdir()
    for seed, sym in enumerate(PLUGINS):
        write_candles(candles, seed + 31, sym)
    config = tmp_path / "plugins.yaml"
    config.write_text("defaults: {size_usd: 4000, max_position_usd: 4000, fee_bps: 5, slippage_bps: 2}\nsymbols:\n"
                      + "".join(f"  {s}: {c}\n" for s, (c, _) in PLUGINS.items()))
    symbols = sorted(PLUGINS)
    env = fast_env(redis_server.url, ns, data_dir)
    m = ManagerProc(["--symbols", ",".join(symbols), "--config", str(config), "--source", f"replay:{candles}"],
                    {**env, "LEVIBOT_REPLAY_SPEED": "1e9", "LEVIBOT_HEARTBEAT_TIMEOUT_S": "60"})
    replay_all(m, r, ns, symbols, timeout=300)
    shorts = 0
    for sym, (_, spec) in PLUGINS.items():
        out = tmp_path / f"bt-{sym}"
        name = f"{sym.removesuffix('USDT')}_USDT-1h.csv"
        res = subprocess.run([sys.executable, "-m", "backend.ml.research.backtest", "--ohlcv-dir", str(candles),
                              "--pattern", name, "--full", "--engine-config", str(config), "--strategy", spec,
                              "--out", str(out)], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=300, check=False)
        assert res.returncode == 0, res.stderr[-2000:]
        live = [e for e in journal_entries(data_dir, sym) if e["type"] == "fill"]
        bt = read_csv(out / sym / "fills.csv")
        assert len(live) > 5, f"{sym}: {len(live)} fills"
        assert_same_fills(sym, live, bt)
        pos = 0.0
        for f in live:
            pos += float(f["qty"]) * (1 if f["side"] == "buy" else -1)  # type: ignore[arg-type]
            shorts += pos < -1e-12
        checked = [e for e in engine_log(data_dir, sym) if "strategy checked" in str(e.get("msg", ""))]
        assert checked and "OK: no look-ahead" in str(checked[0]["msg"]), f"{sym}: checked before trading"
    assert shorts, "the long/short plugin sold short"
