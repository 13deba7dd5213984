"""The features of a window's last rows, in numpy: what an engine computes on every candle.

``feature_pipeline.build`` computes every row of a file with pandas (research, the feature cache); an engine
needs only the last ``n`` rows of its window (the TFT's encoder; the trees read the last one) and used to pay
for ~25 pandas operations per candle whatever the window's length (~4 ms of fixed overhead on this machine's
2 cores). Here each rolling window is evaluated only for the rows asked for, the EWMs (MACD) are run over the
last ``EWM_SPAN`` candles (older weights are below 1e-23), and the higher timeframes reuse ``multi_tf``'s
numpy code. The values equal ``build``'s on the same window (a test compares every column).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from backend.src.core.types import Candle
from backend.src.models.feature_pipeline import FEATURES, RET_HORIZONS
from backend.src.models.multi_tf import NORMALISED, htf_feature_names, htf_values, timeframes_for

EWM_SPAN = 700  # candles an EWM is run over: the slowest (span 26) weighs older ones below (25/27)^700 < 1e-23


def _windows(x: np.ndarray, w: int, n: int) -> np.ndarray:
    """The trailing windows of length ``w`` ending at each of the last ``n`` positions (NaN-padded in front)."""
    need = n + w - 1
    if len(x) < need:
        x = np.concatenate([np.full(need - len(x), np.nan), x])
    return sliding_window_view(x[-need:], w)


def _mean(x: np.ndarray, w: int, n: int) -> np.ndarray:
    return np.asarray(_windows(x, w, n).mean(axis=1))


def _std(x: np.ndarray, w: int, n: int) -> np.ndarray:
    return np.asarray(_windows(x, w, n).std(axis=1, ddof=1))


def _ewm(x: np.ndarray, span: int, n: int) -> np.ndarray:
    """pandas' ``ewm(span, adjust=False).mean()``, its last ``n`` values, started ``EWM_SPAN`` candles back."""
    a = 2.0 / (span + 1)
    tail = x[-EWM_SPAN:] if len(x) > EWM_SPAN else x
    out = np.empty(len(tail))
    y = tail[0]
    for i, v in enumerate(tail.tolist()):
        y = v if i == 0 else y + a * (v - y)
        out[i] = y
    return out[-n:]


def _last(x: np.ndarray, n: int) -> np.ndarray:
    return x[-n:] if len(x) >= n else np.concatenate([np.full(n - len(x), np.nan), x])


def _lag_diff(x: np.ndarray, k: int, n: int) -> np.ndarray:
    d = np.full(len(x), np.nan)
    d[k:] = x[k:] - x[:-k]
    return _last(d, n)


def technical_tail(df: pd.DataFrame, n: int) -> np.ndarray:
    """``technical_features(df)``'s last ``n`` rows (columns as ``FEATURES``)."""
    close, high, low, vol = (df[c].to_numpy(dtype=float) for c in ("close", "high", "low", "volume"))
    n = min(n, len(df))
    with np.errstate(divide="ignore", invalid="ignore"):
        logc = np.log(close)
        r1 = np.concatenate([[np.nan], np.diff(logc)])
        cols: dict[str, np.ndarray] = {f"ret_{h}": _lag_diff(logc, h, n) for h in RET_HORIZONS}
        cols["vol_12"], cols["vol_48"] = _std(r1, 12, n), _std(r1, 48, n)
        cols["vol_ratio"] = cols["vol_12"] / cols["vol_48"]
        prev = np.concatenate([[np.nan], close[:-1]])
        tr = np.fmax(np.fmax(high - low, np.abs(high - prev)), np.abs(low - prev))
        cols["atr_14"] = _mean(tr, 14, n) / _last(close, n)
        delta = np.concatenate([[np.nan], np.diff(close)])
        gain, loss = _mean(np.clip(delta, 0, None), 14, n), _mean(np.clip(-delta, 0, None), 14, n)
        rsi = 100 - 100 / (1 + gain / np.where(loss == 0, np.nan, loss))
        cols["rsi_14"] = np.where(loss == 0, 100.0, rsi)
        macd_all = (_ewm(close, 12, EWM_SPAN) - _ewm(close, 26, EWM_SPAN)) / _last(close, min(len(close), EWM_SPAN))
        signal = _ewm(macd_all, 9, n)
        cols["macd"], cols["macd_signal"] = macd_all[-n:], signal
        cols["macd_hist"] = cols["macd"] - signal
        lv = np.log1p(vol)
        cols["volume_z_48"] = (_last(lv, n) - _mean(lv, 48, n)) / _std(lv, 48, n)
        hi48, lo48 = _windows(high, 48, n).max(axis=1), _windows(low, 48, n).min(axis=1)
        span = hi48 - lo48
        cols["range_pos_48"] = (_last(close, n) - lo48) / np.where(span == 0, np.nan, span)
        cols["sma_gap_12_48"] = _mean(close, 12, n) / _mean(close, 48, n) - 1
        hours = (pd.to_datetime(df.index[-n:], unit="ms", utc=True).hour + 0.5).to_numpy()
        cols["hour_sin"], cols["hour_cos"] = np.sin(2 * np.pi * hours / 24), np.cos(2 * np.pi * hours / 24)
    values = np.column_stack([np.asarray(cols[name], dtype=float) for name in FEATURES])
    first = len(df) - n  # the row index of the first row returned
    if first < 48:
        values[: 48 - first] = np.nan  # nothing before the longest window is trustworthy
    values[~np.isfinite(values)] = np.nan
    return values


def normalised_tail(df: pd.DataFrame, n: int) -> np.ndarray:
    """``multi_tf.normalised_returns(df)``'s last ``n`` rows."""
    logc = np.log(df["close"].to_numpy(dtype=float))
    r1 = np.concatenate([[np.nan], np.diff(logc)])
    win = _windows(r1, 288, n)
    count = np.sum(~np.isnan(win), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        vol = np.where(count >= 96, np.nanstd(win, axis=1, ddof=1), np.nan)
        cols = [_lag_diff(logc, h, n) / (vol * math.sqrt(h)) for h in (int(c.split("_")[1]) for c in NORMALISED)]
    out = np.column_stack(cols)
    out[~np.isfinite(out)] = np.nan
    return out


def build_tail(df: pd.DataFrame, n: int, multi_timeframe: bool = True) -> pd.DataFrame:
    """``feature_pipeline.build(df)``'s last ``n`` rows (no cross-pair context, no outside series)."""
    n = min(n, len(df))
    blocks, names = [technical_tail(df, n)], list(FEATURES)
    if multi_timeframe:
        tf = int(np.median(np.diff(df.index.to_numpy()))) if len(df) > 1 else 0
        timeframes = timeframes_for(tf)
        blocks += [htf_values(df, tf, timeframes, n), normalised_tail(df, n)]
        names += [*htf_feature_names(timeframes), *NORMALISED]
    return pd.DataFrame(np.hstack(blocks), index=df.index[-n:], columns=names)


class Window:
    """The last ``size`` candles as one numpy block (ts, open, high, low, close, volume), appended in O(1):
    rows are written into twice the room and moved back once it is full, so no frame is rebuilt per candle."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buf = np.empty((2 * size, 6))
        self.end = 0

    def __len__(self) -> int:
        return min(self.end, self.size)

    def append(self, c: Candle) -> None:
        if self.end == len(self.buf):
            self.buf[: self.size - 1] = self.buf[self.end - self.size + 1:self.end]
            self.end = self.size - 1
        self.buf[self.end] = (c.ts, c.open, c.high, c.low, c.close, c.volume)
        self.end += 1

    def pop(self) -> None:
        """Forget the last candle (re-deciding on it)."""
        if len(self):
            self.end -= 1

    def extend(self, candles: Iterable[Candle]) -> None:
        for c in candles:
            self.append(c)

    def frame(self) -> pd.DataFrame:
        rows = self.buf[self.end - len(self):self.end]
        return pd.DataFrame(rows[:, 1:], index=pd.Index(rows[:, 0].astype(np.int64), name="ts"),
                            columns=["open", "high", "low", "close", "volume"])
