"""Every LeviLang indicator, computed incrementally (as engines and the backtester run it), equals an
independent batch computation with pandas on real candles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.src.market.candles import load_candles
from backend.src.trading.levilang import compile_text
from backend.src.trading.levilang.strategy import LeviStrategy
from backend.tests.conftest import OHLCV_DIR


def seeded_ewm(x: pd.Series, n: int, alpha: float) -> pd.Series:
    """An EMA seeded with the simple mean of its first n values (the usual TA definition)."""
    out = pd.Series(np.nan, index=x.index)
    x = x.dropna()
    if len(x) < n:
        return out
    seed = pd.concat([pd.Series([x.iloc[:n].mean()], index=[x.index[n - 1]]), x.iloc[n:]])
    out.loc[seed.index] = seed.ewm(alpha=alpha, adjust=False).mean()
    return out


def wilder(x: pd.Series, n: int) -> pd.Series:
    return seeded_ewm(x, n, 1 / n)


def batch(df: pd.DataFrame) -> dict[str, pd.Series]:
    c = df["close"]
    d = c.diff()
    gain, loss = wilder(d.clip(lower=0), 14), wilder(-d.clip(upper=0), 14)
    prev = c.shift()
    tr = pd.concat([df["high"] - df["low"], (df["high"] - prev).abs(), (df["low"] - prev).abs()], axis=1).max(axis=1)
    tr.iloc[0] = df["high"].iloc[0] - df["low"].iloc[0]
    mid, sd = c.rolling(20).mean(), c.rolling(20).std(ddof=0)
    macd = seeded_ewm(c, 12, 2 / 13) - seeded_ewm(c, 26, 2 / 27)
    signal = seeded_ewm(macd, 9, 2 / 10)
    logret = np.log(c / c.shift())
    vol = df["volume"]
    return {
        "sma": c.rolling(10).mean(), "ema": seeded_ewm(c, 10, 2 / 11), "rsi": 100 - 100 / (1 + gain / loss),
        "atr": wilder(tr, 14), "bbu": mid + 2 * sd, "bbl": mid - 2 * sd, "bbm": mid, "macd": macd,
        "macds": signal, "macdh": macd - signal, "ret": c / c.shift(3) - 1, "vola": logret.rolling(12).std(ddof=1),
        "volz": (vol - vol.rolling(20).mean()) / vol.rolling(20).std(ddof=0),
        "hi": c.rolling(7).max(), "lo": c.rolling(7).min(),
    }


EXPRS = {"sma": "sma(close, 10)", "ema": "ema(close, 10)", "rsi": "rsi(close)", "atr": "atr()",
         "bbu": "bb_upper(close, 20)", "bbl": "bb_lower(close, 20, 2)", "bbm": "bb_mid(close, 20)",
         "macd": "macd(close)", "macds": "macd_signal(close)", "macdh": "macd_hist(close, 12, 26, 9)",
         "ret": "returns(close, 3)", "vola": "volatility(close, 12)", "volz": "volume_z(20)",
         "hi": "highest(close, 7)", "lo": "lowest(close, 7)"}


@pytest.mark.parametrize("name", ["ETH_BTC-5m.csv", "UNITTEST_BTC-1m.csv"])
def test_incremental_equals_batch(name: str) -> None:
    candles, _ = load_candles(OHLCV_DIR / name)
    candles = candles[:3000]
    df = pd.DataFrame([(c.open, c.high, c.low, c.close, c.volume) for c in candles],
                      columns=["open", "high", "low", "close", "volume"])
    text = "name: t\nindicators:\n" + "".join(f"  {k}: {v}\n" for k, v in EXPRS.items()) + "entry: sma > 0\n"
    s = LeviStrategy(compile_text(text))
    got: dict[str, list[float]] = {k: [] for k in EXPRS}
    for c in candles:
        s.on_candle(c)
        for k in EXPRS:
            got[k].append(s.c.indicators[k].value)
    want = batch(df)
    for k in EXPRS:
        a, b = np.array(got[k]), want[k].to_numpy(dtype=float)
        differ = np.flatnonzero(np.isnan(a) != np.isnan(b))
        assert not len(differ), f"{k}: warm-up differs at {differ[:5]}"
        ok = ~np.isnan(a)
        assert ok.sum() > 2500, k
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-9, atol=1e-12, err_msg=k)
