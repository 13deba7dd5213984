"""Backtest = live for perpetuals: real engines replaying hourly candle files (shorts, flips, funding from a
funding file, liquidations) and the backtester's ``--full`` run of the same files with the same engine
config journal the same fills (candle, side, quantity, price, fee, reason) and the same funding payments."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from backend.src.core.settings import REPO_ROOT
from backend.src.market.candles import SyntheticSource
from backend.src.market.perpetual import FUNDING_INTERVAL_MS
from backend.tests.conftest import ManagerProc, fast_env
from backend.tests.integration.helpers import backtest_full, journal_entries, replay_all

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
START_S = 1_700_006_400  # 2023-11-15 00:00 UTC: a funding time
ROWS = 1200
SHORTS = REPO_ROOT / "backend" / "strategies" / "trend_long_short.levi.yaml"
SYMBOLS = {  # symbol -> strategy and perpetual settings
    "PSMAUSDT": "{strategy: {name: sma_crossover, fast: 10, slow: 40, allow_short: true}, leverage: 3, "
                "stop_loss_pct: 6}",
    # its funding history beside its candles (as the downloader saves it), found without a funding_file
    "PLEVIUSDT": f"{{strategy: {{levilang: {SHORTS}}}, leverage: 5, funding_file: null}}",
    "PLIQUSDT": "{strategy: {name: sma_crossover, fast: 5, slow: 20, allow_short: true}, leverage: 20, "
                "liquidation_buffer_atr: 0}",
}


def write_candles(out: Path, seed: int, symbol: str) -> Path:
    src = SyntheticSource(symbol, seed=seed, interval_s=3600, timeframe="1h", annual_volatility=1.6, price=2000.0,
                          now=START_S + ROWS * 3600)
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{c.ts},{c.open:.10g},{c.high:.10g},{c.low:.10g},{c.close:.10g},{c.volume:.8f}"
              for c in src.warmup(ROWS)]
    path = out / f"{symbol.removesuffix('USDT')}_USDT-1h.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def real_futures(out: Path, rows: int = 1500) -> str | None:
    """The first ``rows`` real BTC perpetual candles when the shared files sit beside the repository."""
    real = next((p / "shared" / "data" / "futures-1h" / "BTC_USDT-1h.csv" for p in REPO_ROOT.resolve().parents
                 if (p / "shared" / "data" / "futures-1h" / "BTC_USDT-1h.csv").is_file()), None)
    if real is None:
        return None
    lines = real.read_text().splitlines(keepends=True)[: rows + 1]
    (out / "RBTC_USDT-1h.csv").write_text("".join(lines))
    return "RBTCUSDT"


def write_funding(path: Path) -> None:
    """Rates of both signs, one per funding time over the candles and a day either side."""
    first = (START_S * 1000 // FUNDING_INTERVAL_MS - 3) * FUNDING_INTERVAL_MS
    rows = [f"{first + i * FUNDING_INTERVAL_MS},{0.0003 * math.sin(i / 5) + 0.0001:.8f}" for i in range(ROWS // 8 + 7)]
    path.write_text("timestamp,rate\n" + "\n".join(rows) + "\n")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-300)


def assert_same_fills(sym: str, live: list[dict[str, object]], bt: list[dict[str, str]]) -> None:
    """An engine's journaled fills and the backtester's ``fills.csv``, fill for fill."""
    assert len(live) == len(bt), f"{sym}: engine {len(live)} fills, backtest {len(bt)}"
    for a, b in zip(live, bt, strict=True):
        assert (int(a["candle_ts"]), a["side"], a.get("reason", "")) == (  # type: ignore[call-overload]
            int(b["candle_ts"]), b["side"], b["reason"]), (sym, a, b)
        for k in ("qty", "price", "fee"):
            assert same(float(a[k]), float(b[k])), (sym, k, a[k], b[k])  # type: ignore[arg-type]


def test_perpetual_engines_and_the_backtester_agree_on_fills_funding_and_liquidations(
        redis_server, ns: str, data_dir: Path, r: redis.Redis, tmp_path: Path,
        start_manager: Callable[..., ManagerProc]) -> None:
    candles = tmp_path / "candles"
    candles.mkdir()
    for seed, sym in enumerate(SYMBOLS):
        write_candles(candles, seed + 11, sym)
    write_funding(tmp_path / "funding.csv")
    write_funding(candles / "PLEVIUSDT-funding.csv")
    configs = dict(SYMBOLS)
    real = real_futures(candles)  # real candles too, where they are: the short-selling LeviLang example, 3x
    if real is not None:
        configs[real] = f"{{strategy: {{levilang: {SHORTS}}}, leverage: 3, funding_file: null, funding_rate: 0.0001}}"
    config = tmp_path / "perp.yaml"
    config.write_text("defaults: {market: perpetual, size_usd: 4000, max_position_usd: 4000, fee_bps: 5, "
                      "maker_fee_bps: 2, slippage_bps: 2, funding_file: funding.csv}\nsymbols:\n"
                      + "".join(f"  {s}: {v}\n" for s, v in configs.items()))
    symbols = sorted(configs)
    env = fast_env(redis_server.url, ns, data_dir)
    m = ManagerProc(["--symbols", ",".join(symbols), "--config", str(config), "--source", f"replay:{candles}"],
                    {**env, "LEVIBOT_REPLAY_SPEED": "1e9", "LEVIBOT_HEARTBEAT_TIMEOUT_S": "60"})
    replay_all(m, r, ns, symbols, timeout=300)
    out = backtest_full(candles, config, tmp_path / "bt", env, timeout=600)
    seen = {"short": 0, "funding": 0, "liquidation": 0, "flip": 0}
    for sym in symbols:
        journal = journal_entries(data_dir, sym)
        live = [e for e in journal if e["type"] == "fill"]
        bt = read_csv(out / sym / "fills.csv")
        assert_same_fills(sym, live, bt)
        paid = [e for e in journal if e["type"] == "funding"]
        bt_paid = read_csv(out / sym / "funding.csv")
        assert len(paid) == len(bt_paid), f"{sym}: engine {len(paid)} funding payments, backtest {len(bt_paid)}"
        for a, b in zip(paid, bt_paid, strict=True):
            assert int(a["candle_ts"]) == int(b["candle_ts"]) and a["candle_ts"] % FUNDING_INTERVAL_MS == 0
            for k in ("rate", "qty", "price", "amount"):
                assert same(float(a[k]), float(b[k])), (sym, k, a[k], b[k])  # type: ignore[arg-type]
        pos = 0.0
        for f in live:
            pos += float(f["qty"]) * (1 if f["side"] == "buy" else -1)  # type: ignore[arg-type]
            seen["short"] += pos < -1e-12
        seen["funding"] += len(paid)
        if sym == "PLEVIUSDT":  # the series beside its candles, not the constant baseline
            assert len({round(float(e["rate"]), 10) for e in paid}) > 3, paid[:3]  # type: ignore[arg-type]
        if sym == real:
            assert live and paid, f"{sym}: the real candles traded and paid funding"
        seen["liquidation"] += sum(1 for f in live if f.get("reason") == "liquidation")
        orders = [e for e in journal if e["type"] == "order"]
        seen["flip"] += sum(1 for o in orders if str(o["id"]).endswith("-close"))
    assert all(seen.values()), seen  # shorts, long<->short turns, funding both ways and liquidations happened
