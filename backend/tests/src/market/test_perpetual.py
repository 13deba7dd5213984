"""Maintenance brackets, the isolated liquidation price and funding series, against hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.src.core.config import SymbolConfig
from backend.src.market.candles import is_candle_file, resolve_replay_file
from backend.src.market.perpetual import (
    FUNDING_INTERVAL_MS,
    Brackets,
    FundingRates,
    funding_beside,
    is_funding_time,
    liquidation_price,
    read_funding_csv,
)

T0 = 1_699_977_600_000  # 2023-11-14 16:00 UTC, a funding time


def test_the_tiers_and_their_maintenance_amounts() -> None:
    b = Brackets.default("BTCUSDT")
    assert [t.cum for t in b.tiers[:4]] == [0.0, 50.0, 2550.0, 122550.0]  # continuous at every floor
    assert b.tier(40_000).mmr == 0.004 and b.tier(60_000).mmr == 0.005 and b.max_leverage(1_000_000) == 50
    assert Brackets.default("NOSUCHUSDT").tiers[0].max_leverage == 25  # the generic tiers


def test_liquidation_price_by_hand() -> None:
    b = Brackets.default("BTCUSDT")
    # long 0.1 BTC at 20 000, 10x: margin 200; LP = (200 - 2000) / (0.1*0.004 - 0.1)
    long = liquidation_price(0.1, 20_000, 200, b)
    assert long == pytest.approx(1800 / 0.0996)
    assert 0.1 * (20_000 - long) + 0.004 * 0.1 * long == pytest.approx(200)  # loss + maintenance = margin
    # short 0.1 at 20 000, 10x: LP = (200 + 2000) / (0.1*0.004 + 0.1)
    assert liquidation_price(-0.1, 20_000, 200, b) == pytest.approx(2200 / 0.1004)
    assert liquidation_price(0.1, 20_000, 2000, b) == 0.0  # a 1x long is never liquidated above zero


def test_a_large_position_is_liquidated_on_its_own_tier() -> None:
    b = Brackets.default("BTCUSDT")
    qty, entry = 100.0, 20_000.0  # 2M notional: tier 3 (1 %, cum 2550)
    lp = liquidation_price(qty, entry, qty * entry / 20, b)
    assert lp == pytest.approx((100_000 + 2550 - 2_000_000) / (100 * 0.01 - 100))


def test_funding_times() -> None:
    assert is_funding_time(T0) and is_funding_time(T0 + FUNDING_INTERVAL_MS) and not is_funding_time(T0 + 3_600_000)
    assert FundingRates(0.0001).rate(T0) == 0.0001


def write(tmp_path: Path, rows: list[str]) -> Path:
    p = tmp_path / "BTC_USDT-funding.csv"
    p.write_text("timestamp,rate\n" + "\n".join(rows) + "\n")
    return p


def test_a_funding_series_reads_the_exchange_stamps(tmp_path: Path) -> None:
    rows = [f"{T0 + i * FUNDING_INTERVAL_MS + 3},{0.0001 * (i + 1)}" for i in range(3)]  # a few ms late
    f = read_funding_csv(write(tmp_path, rows))
    assert f.rate(T0 + FUNDING_INTERVAL_MS) == pytest.approx(0.0002)
    assert f.near(T0 + FUNDING_INTERVAL_MS + 5) == pytest.approx(0.0002)
    assert f.covers(T0, T0 + 2 * FUNDING_INTERVAL_MS) is None
    assert "covers" in str(f.covers(T0, T0 + 3 * FUNDING_INTERVAL_MS))
    with pytest.raises(ValueError, match="no funding rate for"):
        f.rate(T0 + 3 * FUNDING_INTERVAL_MS)


@pytest.mark.parametrize(("rows", "message"), [
    ([f"{T0},0.0001", f"{T0 + 2 * FUNDING_INTERVAL_MS},0.0001"], "line 3: gap or disorder"),
    ([f"{T0},0.0001", f"{T0 + FUNDING_INTERVAL_MS},nan"], "line 3: rate 'nan' is not a funding rate"),
    ([f"{T0 + 3_600_000},0.0001"], "line 2: .* is not a funding time"),
    ([f"{T0},abc"], "line 2: needs numeric timestamp,rate"),
    ([], "holds no rates"),
])
def test_a_bad_funding_file_is_one_line_naming_the_row(tmp_path: Path, rows: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=f"^funding_file: BTC_USDT-funding.csv {message}|^funding_file: .*{message}"):
        read_funding_csv(write(tmp_path, rows))


def test_the_funding_history_beside_the_candles_is_found_and_never_replayed(tmp_path: Path) -> None:
    candles = tmp_path / "BTC_USDT-1h.csv"
    candles.write_text("timestamp,open,high,low,close,volume\n1699977600000,1,1,1,1,1\n")
    perp = SymbolConfig(market="perpetual")
    assert funding_beside(perp, candles, "BTCUSDT") == perp  # nothing beside it: the baseline rate
    write(tmp_path, [f"{T0},0.0001", f"{T0 + FUNDING_INTERVAL_MS},0.0002"])  # BTC_USDT-funding.csv
    assert funding_beside(perp, candles, "BTCUSDT").funding_file == str(tmp_path / "BTC_USDT-funding.csv")
    assert funding_beside(perp.model_copy(update={"funding_rate": 0.0}), candles, "BTCUSDT").funding_file is None
    assert funding_beside(SymbolConfig(), candles, "BTCUSDT").funding_file is None  # spot pays no funding
    assert resolve_replay_file(tmp_path, "BTCUSDT") == candles  # the funding file is not a second replay file
    assert not is_candle_file(tmp_path / "BTC_USDT-funding.csv") and is_candle_file(candles)
    (tmp_path / "BTC_USDT-funding.csv").write_text("timestamp,rate\n1,nan\n")
    with pytest.raises(ValueError, match="^funding_file: BTC_USDT-funding.csv line 2"):
        funding_beside(perp, candles, "BTCUSDT")
