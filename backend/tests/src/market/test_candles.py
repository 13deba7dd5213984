from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from backend.src.core.errors import UsageError
from backend.src.market.candles import ReplaySource, SyntheticSource, load_candles, resolve_replay_file
from backend.tests.conftest import OHLCV_DIR


def synth(now: float, price: float = 100.0, seed: int = 7, symbol: str = "BTCUSDT") -> SyntheticSource:
    return SyntheticSource(symbol, seed=seed, interval_s=1.0, timeframe="1m", annual_volatility=0.7,
                           price=price, now=now)


def test_synthetic_is_seeded_and_symbol_specific() -> None:
    a, b, c = synth(1000.5), synth(1000.5), synth(1000.5, symbol="ETHUSDT")
    pa = [a.poll(t + 0.5) for t in range(1001, 1200)]
    pb = [b.poll(t + 0.5) for t in range(1001, 1200)]
    pc = [c.poll(t + 0.5) for t in range(1001, 1200)]
    assert pa == pb and pa != pc
    assert all(x is not None for x in pa)


def test_synthetic_candles_are_consistent_and_realistic() -> None:
    s = synth(0.5)
    candles = [s.poll(t + 0.5) for t in range(1, 20_001)]
    rets = [math.log(c.close / c.open) for c in candles if c]
    for c in candles[:500]:
        assert c and c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high and c.volume > 0
    sigma_1m = 0.7 * math.sqrt(60 / (365 * 86400))
    assert 0.5 * sigma_1m < statistics.pstdev(rets) < 3 * sigma_1m
    # regimes switch: rolling volatility varies between blocks
    block = [statistics.pstdev(rets[i : i + 240]) for i in range(0, 19_000, 240)]
    assert max(block) / min(block) > 2
    # fat tails
    sd = statistics.pstdev(rets)
    z = [r / sd for r in rets]
    assert sum(1 for x in z if abs(x) > 4) > 5


def test_synthetic_no_candle_before_close_and_gaps_walk_the_price() -> None:
    s = synth(10.2)
    assert s.poll(10.9) is None
    c = s.poll(11.0)
    assert c is not None and c.ts == 10_000
    ref = synth(10.2)
    for t in range(11, 16):
        ref.poll(float(t))
    jumped = s.poll(16.0)  # engine was busy for 5 candles
    assert jumped is not None and jumped.ts == 15_000 and jumped.open == pytest.approx(ref.price)


def test_synthetic_warmup_ends_at_current_price() -> None:
    s = synth(500.3, price=123.0)
    hist = s.warmup(30)
    assert len(hist) == 30 and hist[-1].close == pytest.approx(123.0)
    assert [c.ts for c in hist] == [k * 1000 for k in range(470, 500)]
    fresh = synth(470.3, price=hist[0].open)
    replayed = [fresh.poll(t + 0.3) for t in range(471, 501)]
    assert [round(c.close, 9) for c in replayed if c] == [round(c.close, 9) for c in hist]


@pytest.mark.parametrize("path", sorted(OHLCV_DIR.glob("*.csv")), ids=lambda p: p.name)
def test_every_shared_file_loads_with_a_report(path: Path) -> None:
    candles, report = load_candles(path)
    assert report.rows == len(candles) > 0
    assert all(a.ts < b.ts for a, b in zip(candles, candles[1:], strict=False))
    assert report.timeframe_ms in (60_000, 300_000, 1_800_000)


def test_loader_drops_duplicates_and_counts_gaps(tmp_path: Path) -> None:
    p = tmp_path / "X.csv"
    p.write_text("timestamp,open,high,low,close,volume\n0,1,1,1,1,1\n60000,1,1,1,1,1\n60000,2,2,2,2,2\n"
                 "240000,1,1,1,1,1\n180000,1,1,1,1,1\n")
    candles, report = load_candles(p)
    assert [c.ts for c in candles] == [0, 60000, 180000, 240000]
    assert (report.duplicates, report.gaps, report.timeframe_ms) == (1, 1, 60000)


def test_parquet_round_trip(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "BTCUSDT-5m.parquet"
    pq.write_table(pa.table({"timestamp": [0, 300000], "open": [1.0, 2], "high": [2.0, 3], "low": [0.5, 1],
                             "close": [2.0, 2.5], "volume": [10.0, 11]}), p)
    candles, _ = load_candles(p)
    assert [c.close for c in candles] == [2.0, 2.5]
    pq.write_table(pa.table({"timestamp": [0], "open": [1.0]}), p)
    with pytest.raises(UsageError, match="missing column"):
        load_candles(p)


def test_replay_paced_by_speed_and_resumes_after_cursor() -> None:
    candles, _ = load_candles(OHLCV_DIR / "ETH_BTC-5m.csv")
    src = ReplaySource(candles, speed=300.0, after_ts=None, now=100.0)
    assert src.poll(100.0) == candles[0]
    assert src.poll(100.5) is None  # next 5m candle is due 1 s later at 300x
    assert src.poll(101.0) == candles[1]
    resumed = ReplaySource(candles, speed=300.0, after_ts=candles[1].ts, now=0.0)
    assert resumed.warmup(2) == candles[:2] and resumed.poll(0.0) == candles[2]
    end = ReplaySource(candles[:1], speed=1.0, after_ts=candles[0].ts, now=0.0)
    assert end.exhausted and end.poll(1e12) is None


def test_resolve_replay_file(tmp_path: Path) -> None:
    assert resolve_replay_file(OHLCV_DIR, "ETHBTC").name == "ETH_BTC-5m.csv"
    with pytest.raises(UsageError, match="several replay files for UNITTESTBTC"):
        resolve_replay_file(OHLCV_DIR, "UNITTESTBTC")
    template = Path(str(OHLCV_DIR) + "/{symbol}-5m.csv")
    with pytest.raises(UsageError, match="does not exist"):
        resolve_replay_file(template, "BTCUSDT")
