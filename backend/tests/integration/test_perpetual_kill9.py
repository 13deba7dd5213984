"""``kill -9`` while short and while turning long → short: the journal, the position book rebuilt from it
and the engine's status agree; no order and no funding payment is booked twice; every fill is at a real
candle's price."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from backend.src.core.config import SymbolConfig
from backend.src.market.candles import load_candles
from backend.src.trading.book import PositionBook
from backend.src.trading.margin import Margin
from backend.tests.conftest import ManagerProc, wait_for
from backend.tests.integration.helpers import journal_entries, running_pid, state, wait_running
from backend.tests.integration.test_perpetual_parity import write_candles

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
SYMBOL = "KSHORTUSDT"
CONFIG = ("defaults: {market: perpetual, leverage: 4, size_usd: 1000, max_position_usd: 1000, fee_bps: 5, "
          "slippage_bps: 2, funding_rate: 0.0002, stop_loss_pct: 10, "
          "strategy: {name: sma_crossover, fast: 3, slow: 8, allow_short: true}}\n")


def short_or_turning(entries: list[dict[str, object]]) -> bool:
    """Short now, or a long → short turn decided and not yet filled."""
    pos = sum(float(e["qty"]) * (1 if e["side"] == "buy" else -1)  # type: ignore[arg-type]
              for e in entries if e["type"] == "fill")
    open_ids = {e["id"] for e in entries if e["type"] == "order"} - {e["order_id"] for e in entries
                                                                    if e["type"] == "fill"}
    return pos < -1e-12 or any(str(i).endswith("-close") for i in open_ids)


def test_kill9_while_short_or_flipping_loses_nothing(
        start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str, data_dir: Path,
        tmp_path: Path) -> None:
    candles = tmp_path / "candles"
    candles.mkdir()
    path = write_candles(candles, 5, SYMBOL)
    config = tmp_path / "perp.yaml"
    config.write_text(CONFIG)
    m = start_manager([SYMBOL], "--config", str(config), "--source", f"replay:{path}", "--replay-speed", "150000",
                      stable_after_s=0.5, max_restarts=50)  # every kill here is ours, not a crash loop
    pid = wait_running(r, ns, [SYMBOL])[SYMBOL]
    rng = random.Random(7)  # noqa: S311
    kills = 0
    while kills < 6 and state(r, ns, SYMBOL).get("exhausted") != "1":
        try:
            wait_for(lambda: short_or_turning(journal_entries(data_dir, SYMBOL)), 20, interval=0.01,
                     what="a short or a turn")
        except AssertionError:
            break
        time.sleep(rng.uniform(0, 0.05))  # any instant of the candle's work
        os.kill(pid, signal.SIGKILL)
        kills += 1
        pid = wait_for(lambda old=pid: (p := running_pid(r, ns, SYMBOL)) and p != old and p, 15, what="restarted")
        seen = len(journal_entries(data_dir, SYMBOL))
        wait_for(lambda n=seen: len(journal_entries(data_dir, SYMBOL)) > n + 4 or
                 state(r, ns, SYMBOL).get("exhausted") == "1", 30, interval=0.02, what="trading on")
    assert kills >= 4, f"only {kills} kills while short"
    wait_for(lambda: state(r, ns, SYMBOL).get("exhausted") == "1", 120, interval=0.2, what="the replay finished")
    assert m.stop() == 0
    entries = journal_entries(data_dir, SYMBOL)
    cfg = SymbolConfig.model_validate({"market": "perpetual", "leverage": 4, "funding_rate": 0.0002})
    book = PositionBook(SYMBOL, initial_equity=cfg.initial_equity, leverage=4)
    book.rebuild(entries)  # type: ignore[arg-type]
    st = state(r, ns, SYMBOL)
    assert st["status"] == "stopped" and int(st["restarts"]) >= 1
    assert float(st["position"]) == pytest.approx(book.qty, abs=1e-9)
    assert float(st["funding"]) == pytest.approx(book.funding, abs=1e-6)
    assert float(st["margin"]) == pytest.approx(book.margin, abs=1e-6)
    assert float(st["liquidation_price"]) == pytest.approx(Margin(SYMBOL, cfg).liquidation(book), rel=1e-9)
    assert st["side"] == ("long" if book.qty > 0 else "short" if book.qty < 0 else "flat")
    fills = [e for e in entries if e["type"] == "fill"]
    ids = [f["order_id"] for f in fills]
    assert len(ids) == len(set(ids)), "no order filled twice across the kills"
    funding_ts = [e["candle_ts"] for e in entries if e["type"] == "funding"]
    assert funding_ts and len(funding_ts) == len(set(funding_ts)), "no funding charged twice"
    # Every fill at a real candle: a market order at the open of the candle after its decision (2 bps slippage),
    # an exit at its level. (Not the backtest's fills one for one: a kill inside a candle's work, between its
    # fills and its decision, defers that decision to the next candle — the journal stays whole.)
    candles = {c.ts: c for c in load_candles(path)[0]}
    for f in fills:
        c = candles[int(f["candle_ts"])]  # type: ignore[call-overload]
        if f.get("reason") in ("stop_loss", "take_profit", "liquidation"):
            assert c.low * 0.99 <= float(f["price"]) <= c.high * 1.01, f  # type: ignore[arg-type]
        else:
            slip = 1.0002 if f["side"] == "buy" else 0.9998
            assert float(f["price"]) == pytest.approx(c.open * slip, rel=1e-12), f  # type: ignore[arg-type]
    ts = [int(f["candle_ts"]) for f in fills]  # type: ignore[call-overload]
    assert ts == sorted(ts), "fills in candle order across the kills"
