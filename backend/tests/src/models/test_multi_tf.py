"""Higher-timeframe and cross-pair features are causal: a row is the same with or without later candles,
and a higher bar is used only once it has closed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.src.models.feature_pipeline import build, load_ohlcv
from backend.src.models.multi_tf import (
    higher_timeframe_features,
    market_context,
    resample,
    timeframes_for,
)
from backend.src.trading.strategies.ensemble import HOURLY_WINDOW
from backend.tests.conftest import OHLCV_DIR

TF = 300_000


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {p.stem: load_ohlcv(p).iloc[:2400] for p in sorted(OHLCV_DIR.glob("*-5m.csv"))[:3]}


def test_every_row_is_the_same_without_the_candles_after_it(frames: dict[str, pd.DataFrame]) -> None:
    df = next(iter(frames.values()))
    full = build(df)
    for n in (1500, 1501, 1537, 1583, 2399):  # on, just after and inside 15m / 1h / 4h boundaries
        part = build(df.iloc[:n])
        pd.testing.assert_series_equal(part.iloc[-1], full.iloc[n - 1], check_names=False)
    assert full.iloc[1200:].filter(like="tf4h_").notna().all().all(), "4h features after 60 h of history"


def test_a_higher_bar_is_used_only_after_it_closed(frames: dict[str, pd.DataFrame]) -> None:
    df = next(iter(frames.values()))
    hourly = resample(df, 3600_000)
    feats = higher_timeframe_features(df, TF, ("1h",))
    closes = np.log(hourly["close"])
    for i in range(1200, 1260):
        ts = int(df.index[i])
        last_closed = (ts + TF) // 3600_000 * 3600_000 - 3600_000  # open of the last hour ended by this close
        want = closes.loc[last_closed] - closes.loc[last_closed - 3600_000]
        assert feats["tf1h_ret_1"].iloc[i] == pytest.approx(want), ts
    # inside an hour the value does not move; it changes on the first row whose close is past an
    # hour's end (the candle that closes the hour, or the next one when that candle is missing)
    hour_closed = (df.index.to_numpy() + TF) // 3600_000
    changed = feats["tf1h_ret_1"].diff().fillna(0).to_numpy() != 0
    new_hour = np.concatenate([[False], np.diff(hour_closed) > 0])
    assert changed.any() and not (changed & ~new_hour).any()


def test_market_context_is_causal_and_relative(frames: dict[str, pd.DataFrame]) -> None:
    full = market_context(frames)
    t = int(next(iter(frames.values())).index[1800])
    part = market_context({k: v.loc[v.index < t] for k, v in frames.items()})  # no candle of any pair after t
    for k in frames:
        pd.testing.assert_frame_equal(part[k], full[k].loc[full[k].index < t])
        own = np.log(frames[k]["close"]).diff(12)
        np.testing.assert_allclose((full[k]["rel_ret_12"] + full[k]["mkt_ret_12"]).dropna(),
                                   own.loc[full[k]["rel_ret_12"].dropna().index])


def hourly(n: int, start_ms: int = 1_577_836_800_000) -> pd.DataFrame:
    """A random walk of ``n`` hourly candles from 2020-01-01 (a Wednesday), with an exchange gap."""
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    df = pd.DataFrame({"open": np.concatenate([[100.0], close[:-1]]), "high": close * 1.004, "low": close * 0.996,
                       "close": close, "volume": rng.uniform(1, 5, n)},
                      index=pd.Index(start_ms + np.arange(n) * 3_600_000, name="ts"))
    return df.drop(df.index[1500:1503])  # maintenance hours are missing, not filled


def test_hourly_candles_read_4h_daily_and_weekly_bars_causally() -> None:
    df = hourly(3400)
    assert timeframes_for(3_600_000) == ("4h", "1d", "1w") and timeframes_for(300_000) == ("15m", "1h", "4h")
    full = build(df)
    assert {"tf4h_ret_1", "tf1d_vol_12", "tf1w_rsi_14"} <= set(full.columns) and "tf15m_ret_1" not in full
    assert full.iloc[-1].filter(like="tf1w_").notna().all(), "weekly features after 16 weeks"
    for n in (2900, 2905, 3000, 3100, 3396):
        part = build(df.iloc[:n])
        pd.testing.assert_series_equal(part.iloc[-1], full.iloc[n - 1], check_names=False)
    weeks = resample(df, 7 * 86_400_000)
    opens = pd.to_datetime(weeks.index, unit="ms", utc=True)
    assert (opens[1:].dayofweek == 0).all() and (opens[1:].hour == 0).all(), "weekly bars open on Mondays, 00:00 UTC"
    assert HOURLY_WINDOW >= 16 * 168 + 48, "an engine keeps 16 weekly bars and the TFT's encoder"
