"""Higher-timeframe and cross-pair features, resampled causally from the base candles.

A higher-timeframe bar ``[T, T + F)`` is aggregated from the base candles that opened in it
(open of the first, max high, min low, close of the last, summed volume) and becomes usable
for the base bar whose close is at or after ``T + F``: a bar is used only after it has closed,
so a row's features are the same whether or not later candles exist (tested). Each higher bar
series gets a few short-window features (returns, volatility, RSI, SMA gap, range position),
then joins the base rows backwards as of their close time.

Cross-pair context (``market_context``): the mean of every configured pair's recent returns at
the same bar, and the pair's return relative to it. A pair's own row is known at its close,
and so are the other pairs' rows of the same open time, so this is causal too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HIGHER_TIMEFRAMES: dict[str, int] = {"15m": 15 * 60_000, "1h": 3600_000, "4h": 4 * 3600_000}
HTF_NAMES = ("ret_1", "ret_3", "ret_6", "vol_12", "rsi_14", "sma_gap_12", "range_pos_12")
MARKET_FEATURES = ["mkt_ret_12", "mkt_ret_48", "rel_ret_12", "rel_ret_48"]
NORMALISED = ["zret_12", "zret_48", "zret_144"]  # horizon return over the volatility expected for it


def prefix(tf: str) -> str:
    return f"tf{tf}_"


def htf_feature_names(timeframes: tuple[str, ...] = tuple(HIGHER_TIMEFRAMES)) -> list[str]:
    return [prefix(tf) + n for tf in timeframes for n in HTF_NAMES]


def resample(df: pd.DataFrame, period_ms: int) -> pd.DataFrame:
    """Higher bars indexed by their open time (ms), with ``close_ts`` = open + period."""
    group = (df.index.to_numpy() // period_ms) * period_ms
    g = df.groupby(group, sort=True)
    bars = pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
                         "close": g["close"].last(), "volume": g["volume"].sum()})
    bars["close_ts"] = bars.index + period_ms
    return bars


def bar_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Short-window features of one higher-timeframe series (NaN until their window is full)."""
    close, high, low = bars["close"], bars["high"], bars["low"]
    logc = np.log(close)
    r1 = logc.diff()
    out = pd.DataFrame(index=bars.index)
    out["ret_1"], out["ret_3"], out["ret_6"] = r1, logc.diff(3), logc.diff(6)
    out["vol_12"] = r1.rolling(12).std()
    delta = close.diff()
    gain, loss = delta.clip(lower=0).rolling(14).mean(), (-delta.clip(upper=0)).rolling(14).mean()
    rsi = 100 - 100 / (1 + gain / loss.replace(0, np.nan))
    out["rsi_14"] = rsi.where(loss != 0, 100.0).where(gain.notna())
    out["sma_gap_12"] = close / close.rolling(12).mean() - 1
    hi, lo = high.rolling(12).max(), low.rolling(12).min()
    out["range_pos_12"] = (close - lo) / (hi - lo).replace(0, np.nan)
    return out.replace([np.inf, -np.inf], np.nan)


def higher_timeframe_features(df: pd.DataFrame, timeframe_ms: int,
                              timeframes: tuple[str, ...] = tuple(HIGHER_TIMEFRAMES)) -> pd.DataFrame:
    """For each base row (open time ``ts``), the features of the last higher bar closed by ``ts + timeframe``."""
    out = pd.DataFrame(index=df.index)
    close_ts = df.index.to_numpy() + timeframe_ms
    for tf in timeframes:
        period = HIGHER_TIMEFRAMES[tf]
        if period <= timeframe_ms:
            for n in HTF_NAMES:
                out[prefix(tf) + n] = np.nan  # not higher than the base: no information to add
            continue
        bars = resample(df, period)
        feats = bar_features(bars)
        ends = bars["close_ts"].to_numpy()
        pos = np.searchsorted(ends, close_ts, side="right") - 1  # last higher bar closed by this close
        ok = pos >= 0
        values = feats.to_numpy()
        block = np.full((len(df), len(HTF_NAMES)), np.nan)
        block[ok] = values[pos[ok]]
        for j, n in enumerate(HTF_NAMES):
            out[prefix(tf) + n] = block[:, j]
    return out


def normalised_returns(df: pd.DataFrame) -> pd.DataFrame:
    """Returns over 1, 4 and 12 hours of 5m bars in units of their expected volatility (comparable across pairs)."""
    logc = np.log(df["close"])
    vol = logc.diff().rolling(288, min_periods=96).std()
    out = pd.DataFrame(index=df.index)
    for name in NORMALISED:
        h = int(name.split("_")[1])
        out[name] = logc.diff(h) / (vol * np.sqrt(h))
    return out.replace([np.inf, -np.inf], np.nan)


def market_context(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per pair: the mean 1 h / 4 h log return of all pairs at the same bar, and the pair's excess over it."""
    rets = {h: pd.DataFrame({k: np.log(df["close"]).diff(h) for k, df in frames.items()}) for h in (12, 48)}
    means = {h: r.mean(axis=1) for h, r in rets.items()}
    out = {}
    for k, df in frames.items():
        feats = pd.DataFrame(index=df.index)
        for h in (12, 48):
            mkt = means[h].reindex(df.index)
            feats[f"mkt_ret_{h}"] = mkt
            feats[f"rel_ret_{h}"] = rets[h][k].reindex(df.index) - mkt
        out[k] = feats
    return out
