"""OHLCV → technical features, joined as-of with sentiment / on-chain series; no look-ahead.

Every feature of the bar that opened at ``ts`` uses only candles up to and including that
bar (it is known at the bar's close, ``ts + timeframe``); outside series are joined
backwards as of that close time. ``python -m backend.src.models.feature_pipeline [--update]``
caches features per file under ``<data dir>/features/``; ``--update`` recomputes only the
new tail (with a warm-up long enough that the result equals a full recomputation).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from backend.src.core.errors import EXIT_USAGE, UsageError
from backend.src.core.settings import cli_path, cli_settings
from backend.src.market.candles import is_candle_file, load_candles
from backend.src.models.multi_tf import higher_timeframe_features, normalised_returns

log = logging.getLogger(__name__)
WARMUP = 3000  # bars recomputed before new data: EWM weights older than 600 are < 1e-15; 1w windows need 2700 1h bars
RET_HORIZONS = (1, 3, 6, 12, 48)
FEATURES = [
    *(f"ret_{h}" for h in RET_HORIZONS),
    "vol_12", "vol_48", "vol_ratio", "atr_14", "rsi_14", "macd", "macd_signal", "macd_hist",
    "volume_z_48", "range_pos_48", "sma_gap_12_48", "hour_sin", "hour_cos",
]


def load_ohlcv(path: Path) -> pd.DataFrame:
    """Candles of a CSV/Parquet file, validated by the market-data loader, indexed by open time (ms)."""
    candles, _report = load_candles(path)
    df = pd.DataFrame([(c.ts, c.open, c.high, c.low, c.close, c.volume) for c in candles],
                      columns=["ts", "open", "high", "low", "close", "volume"])
    return df.set_index("ts")


def find_file(ohlcv_dir: Path, symbol: str, timeframe: str) -> Path:
    if not ohlcv_dir.is_dir():
        raise UsageError(f"--ohlcv-dir: {ohlcv_dir} is not a directory")
    norm = symbol.replace("/", "").replace("_", "").upper()
    hits = sorted(p for p in ohlcv_dir.iterdir() if p.suffix in (".csv", ".parquet")
                  and p.stem.rsplit("-", 1)[0].replace("_", "").upper() == norm and p.stem.endswith(f"-{timeframe}"))
    if not hits:
        raise UsageError(f"--symbol: no {timeframe} candles for {symbol} in {ohlcv_dir}")
    return hits[0]


def infer_timeframe_ms(df: pd.DataFrame) -> int:
    return int(pd.Series(df.index).diff().median())


def technical_features(df: pd.DataFrame) -> pd.DataFrame:
    """Causal features (rolling windows and EWMs over the past only). NaN during warm-up.

    Computed as Series and assembled into one frame at the end: an engine calls this on a short window
    every candle, where inserting 20 columns one by one cost more than computing them."""
    close, high, low, vol = df["close"], df["high"], df["low"], df["volume"]
    logc = np.log(close)
    cols: dict[str, pd.Series | np.ndarray] = {f"ret_{h}": logc.diff(h) for h in RET_HORIZONS}
    r1 = logc.diff()
    cols["vol_12"], cols["vol_48"] = r1.rolling(12).std(), r1.rolling(48).std()
    cols["vol_ratio"] = cols["vol_12"] / cols["vol_48"]
    prev = close.shift(1)
    tr = np.fmax(np.fmax((high - low).to_numpy(), (high - prev).abs().to_numpy()), (low - prev).abs().to_numpy())
    cols["atr_14"] = pd.Series(tr, index=df.index).rolling(14).mean() / close
    delta = close.diff()
    gain, loss = delta.clip(lower=0).rolling(14).mean(), (-delta.clip(upper=0)).rolling(14).mean()
    cols["rsi_14"] = (100 - 100 / (1 + gain / loss.replace(0, np.nan))).mask(loss == 0, 100.0)
    ema12, ema26 = close.ewm(span=12, adjust=False).mean(), close.ewm(span=26, adjust=False).mean()
    macd = (ema12 - ema26) / close
    cols["macd"], cols["macd_signal"] = macd, macd.ewm(span=9, adjust=False).mean()
    cols["macd_hist"] = macd - cols["macd_signal"]
    lv = np.log1p(vol)
    cols["volume_z_48"] = (lv - lv.rolling(48).mean()) / lv.rolling(48).std()
    hi48, lo48 = high.rolling(48).max(), low.rolling(48).min()
    cols["range_pos_48"] = (close - lo48) / (hi48 - lo48).replace(0, np.nan)
    cols["sma_gap_12_48"] = close.rolling(12).mean() / close.rolling(48).mean() - 1
    hours = (pd.to_datetime(df.index, unit="ms", utc=True).hour + 0.5).to_numpy()
    cols["hour_sin"], cols["hour_cos"] = np.sin(2 * np.pi * hours / 24), np.cos(2 * np.pi * hours / 24)
    values = np.column_stack([np.asarray(cols[name], dtype=float) for name in FEATURES])
    values[:48] = np.nan  # nothing before the longest window is trustworthy
    values[np.isinf(values)] = np.nan
    return pd.DataFrame(values, index=df.index, columns=FEATURES)


def forward_return(df: pd.DataFrame, horizon: int) -> pd.Series:
    """The return a decision at this bar's close can actually earn: log(open ``horizon`` bars after
    the next open / the next open) — an order decided at a close fills at the next open. NaN where
    unknown yet. Its label needs ``horizon + 1`` bars of the future (the walk-forward purges them)."""
    lo = np.log(df["open"])
    return lo.shift(-(horizon + 1)) - lo.shift(-1)


def label_up(df: pd.DataFrame, horizon: int) -> pd.Series:
    """1 if the forward return over ``horizon`` bars is positive, else 0; NaN where unknown yet."""
    fut = forward_return(df, horizon)
    y = (fut > 0).astype(float)
    y[fut.isna()] = np.nan
    return y


def join_asof(features: pd.DataFrame, series: pd.DataFrame, timeframe_ms: int, prefix: str) -> pd.DataFrame:
    """Add ``series`` (indexed by its publication time, ms) as of each bar's close: backward only."""
    left = pd.DataFrame({"close_ts": features.index + timeframe_ms}, index=features.index)
    right = series.sort_index().add_prefix(prefix)
    right.index.name = "pub_ts"
    joined = pd.merge_asof(left.reset_index(), right.reset_index(), left_on="close_ts", right_on="pub_ts",
                           direction="backward", allow_exact_matches=True)
    joined = joined.set_index(features.index.name or "ts").drop(columns=["close_ts", "pub_ts"])
    return features.join(joined)


def build(df: pd.DataFrame, extra: dict[str, pd.DataFrame] | None = None,
          context: pd.DataFrame | None = None, multi_timeframe: bool = True) -> pd.DataFrame:
    """Technical features, the higher timeframes' (15m, 1h, 4h over 5m; 4h, 1d, 1w over 1h) and
    volatility-normalised returns (``multi_timeframe=False``: the base timeframe's only, for models that read
    nothing else); ``context``: cross-pair features on the same bars (``multi_tf.market_context``); ``extra``:
    outside series joined as of each bar's close."""
    tf = infer_timeframe_ms(df) if len(df) > 1 else 0
    feats = technical_features(df)
    if multi_timeframe:
        feats = pd.concat([feats, higher_timeframe_features(df, tf), normalised_returns(df)], axis=1)
    if context is not None:
        feats = feats.join(context)
    for prefix, series in (extra or {}).items():
        feats = join_asof(feats, series, tf, prefix)
    return feats


def cache_path(data_dir: Path, source: Path) -> Path:
    return data_dir / "features" / (source.stem + ".parquet")


def update_cache(source: Path, data_dir: Path, *, full: bool = False) -> tuple[Path, int]:
    """Write (or extend) the feature cache of one OHLCV file. Returns (path, rows computed)."""
    df = load_ohlcv(source)
    out = cache_path(data_dir, source)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = None if full or not out.exists() else pd.read_parquet(out)
    if old is not None and len(old) and old.index[-1] >= df.index[-1]:
        return out, 0
    if old is not None and len(old):
        start = df.index.searchsorted(old.index[-1], side="right")
        tail = build(df.iloc[max(0, start - WARMUP):]).loc[df.index[start]:]
        feats = pd.concat([old, tail])
        computed = len(tail)
    else:
        feats = build(df)
        computed = len(feats)
    tmp = out.with_suffix(".parquet.tmp")
    feats.to_parquet(tmp)
    tmp.replace(out)
    return out, computed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="feature_pipeline", description=__doc__.splitlines()[0])
    ap.add_argument("--ohlcv-dir", type=cli_path, default=None, help="candle files (default: <data dir>/ohlcv)")
    ap.add_argument("--data-dir", type=cli_path, default=None, help="overrides LEVIBOT_DATA_DIR")
    ap.add_argument("--update", action="store_true", help="only compute rows newer than the cache")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = cli_settings(args.data_dir)
    src = args.ohlcv_dir or settings.data_dir / "ohlcv"
    try:
        files = sorted(p for p in src.iterdir() if is_candle_file(p)) if src.is_dir() else []
        if not files:
            raise UsageError(f"--ohlcv-dir: no .csv or .parquet candle files in {src}")
        for f in files:
            path, n = update_cache(f, settings.data_dir, full=not args.update)
            log.info("%s: %d rows computed -> %s", f.name, n, path)
    except UsageError as exc:
        print(f"feature_pipeline: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
