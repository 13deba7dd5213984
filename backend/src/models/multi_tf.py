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

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

HIGHER_TIMEFRAMES: dict[str, int] = {"15m": 15 * 60_000, "1h": 3600_000, "4h": 4 * 3600_000, "1d": 86_400_000,
                                     "1w": 7 * 86_400_000}
WEEK_OFFSET_MS = 4 * 86_400_000  # the epoch was a Thursday: weekly bars open on Mondays, as the exchanges' do
HTF_NAMES = ("ret_1", "ret_3", "ret_6", "vol_12", "rsi_14", "sma_gap_12", "range_pos_12")
MARKET_FEATURES = ["mkt_ret_12", "mkt_ret_48", "rel_ret_12", "rel_ret_48"]
NORMALISED = ["zret_12", "zret_48", "zret_144"]  # horizon return over the volatility expected for it
OHLCV = ("open", "high", "low", "close", "volume")


def prefix(tf: str) -> str:
    return f"tf{tf}_"


def timeframes_for(base_ms: int) -> tuple[str, ...]:
    """The three higher timeframes a base timeframe's features read: 15m, 1h, 4h above 5m candles; 4h, 1d,
    1w above hourly ones (each at least three base bars)."""
    return tuple(tf for tf, ms in HIGHER_TIMEFRAMES.items() if ms >= 3 * base_ms)[:3]


def htf_feature_names(timeframes: tuple[str, ...] = timeframes_for(300_000)) -> list[str]:
    return [prefix(tf) + n for tf in timeframes for n in HTF_NAMES]


def resample(df: pd.DataFrame, period_ms: int) -> pd.DataFrame:
    """Higher bars indexed by their open time (ms), with ``close_ts`` = open + period."""
    o, h, lo, c, v = (df[col].to_numpy(dtype=float) for col in OHLCV)
    bars = _resample(df.index.to_numpy(dtype=np.int64), o, h, lo, c, v, period_ms)
    return pd.DataFrame(dict(zip([*OHLCV, "close_ts"], bars[1:], strict=True)), index=pd.Index(bars[0], name="ts"))


def _resample(ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray,
              period_ms: int) -> tuple[np.ndarray, ...]:
    """Numpy aggregation of sorted base candles into ``period_ms`` bars (an engine does this per candle)."""
    offset = WEEK_OFFSET_MS if period_ms == HIGHER_TIMEFRAMES["1w"] else 0
    keys = (ts - offset) // period_ms * period_ms + offset
    if not len(ts):
        return keys, o, h, lo, c, v, keys
    starts = np.concatenate([[0], np.flatnonzero(np.diff(keys)) + 1])
    ends = np.concatenate([starts[1:], [len(ts)]]) - 1
    return (keys[starts], o[starts], np.maximum.reduceat(h, starts), np.minimum.reduceat(lo, starts), c[ends],
            np.add.reduceat(v, starts), keys[starts] + period_ms)


def _rolling(x: np.ndarray, n: int, fn: Callable[..., Any]) -> np.ndarray:
    """``fn`` over trailing windows of ``n`` (NaN until full, and wherever a window holds a NaN)."""
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1:] = fn(sliding_window_view(x, n), axis=1)
    return out


def _diff(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    out[k:] = x[k:] - x[:-k]
    return out


def bar_features(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Short-window features of one higher-timeframe series, columns as ``HTF_NAMES`` (NaN until full)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logc = np.log(close)
        r1 = _diff(logc, 1)
        delta = _diff(close, 1)
        gain = _rolling(np.clip(delta, 0, None), 14, np.mean)
        loss = _rolling(np.clip(-delta, 0, None), 14, np.mean)
        rsi = np.where(loss == 0, 100.0, 100 - 100 / (1 + gain / np.where(loss == 0, np.nan, loss)))
        rsi = np.where(np.isnan(gain), np.nan, rsi)
        hi, lo = _rolling(high, 12, np.max), _rolling(low, 12, np.min)
        span = hi - lo
        cols = [r1, _diff(logc, 3), _diff(logc, 6), _rolling(r1, 12, partial(np.std, ddof=1)), rsi,
                close / _rolling(close, 12, np.mean) - 1, (close - lo) / np.where(span == 0, np.nan, span)]
    out = np.column_stack(cols) if len(close) else np.zeros((0, len(HTF_NAMES)))
    out[~np.isfinite(out)] = np.nan
    return out


def higher_timeframe_features(df: pd.DataFrame, timeframe_ms: int,
                              timeframes: tuple[str, ...] | None = None) -> pd.DataFrame:
    """For each base row (open time ``ts``), the features of the last higher bar closed by ``ts + timeframe``
    (``timeframes``: by default the three above the base, ``timeframes_for``)."""
    timeframes = timeframes_for(timeframe_ms) if timeframes is None else timeframes
    names = [prefix(tf) + n for tf in timeframes for n in HTF_NAMES]
    return pd.DataFrame(htf_values(df, timeframe_ms, timeframes, len(df)), index=df.index, columns=names)


BAR_HISTORY = 16  # higher bars a feature row reads: the RSI's 14 changes need 15 closes, with one to spare


def htf_values(df: pd.DataFrame, timeframe_ms: int, timeframes: tuple[str, ...], rows: int) -> np.ndarray:
    """``higher_timeframe_features``' values for the last ``rows`` base rows only: the higher bars are
    resampled from the whole window, but their features computed only for the bars those rows read (and the
    ``BAR_HISTORY`` before them), which is what an engine needs per candle."""
    ts = df.index.to_numpy(dtype=np.int64)
    o, hi, low, cl, v = (df[col].to_numpy(dtype=float) for col in OHLCV)
    close_ts = ts[len(ts) - rows:] + timeframe_ms
    blocks = []
    for tf in timeframes:
        period = HIGHER_TIMEFRAMES[tf]
        block = np.full((rows, len(HTF_NAMES)), np.nan)
        if period > timeframe_ms:  # else: not higher than the base, no information to add
            _keys, _o, h, lo, c, _v, ends = _resample(ts, o, hi, low, cl, v, period)
            pos = np.searchsorted(ends, close_ts, side="right") - 1  # last higher bar closed by this close
            ok = pos >= 0
            if ok.any():
                first = max(0, int(pos[ok].min()) - BAR_HISTORY)
                feats = bar_features(h[first:], lo[first:], c[first:])
                block[ok] = feats[pos[ok] - first]
        blocks.append(block)
    return np.hstack(blocks) if blocks else np.zeros((rows, 0))


def normalised_returns(df: pd.DataFrame) -> pd.DataFrame:
    """Returns over 12, 48 and 144 bars (1, 4, 12 hours of 5m bars; 12 hours, 2 and 6 days of hourly ones) in
    units of the volatility expected for them (comparable across pairs)."""
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
