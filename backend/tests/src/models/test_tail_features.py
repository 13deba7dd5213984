"""An engine's per-candle features (numpy, the last rows of its window) equal research's (pandas, every row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.src.core.types import Candle
from backend.src.models.feature_pipeline import build, load_ohlcv
from backend.src.models.tail_features import Window, build_tail
from backend.tests.conftest import OHLCV_DIR
from backend.tests.src.models.test_multi_tf import hourly


@pytest.mark.parametrize("rows", [60, 400, 1000, 2800])
def test_an_engines_last_rows_equal_the_full_computation(rows: int) -> None:
    """``build_tail`` (numpy, the last rows only: what an engine computes per candle) equals ``build`` (pandas,
    every row: research and the feature cache) on the same window, over 5m and hourly candles with gaps."""
    five = load_ohlcv(sorted(OHLCV_DIR.glob("*-5m.csv"))[0]).iloc[:rows]
    for df in (five, hourly(3400).iloc[-rows:]):
        for n in (1, 48):
            want = build(df).iloc[-n:]
            got = build_tail(df, n)
            assert list(got.columns) == list(want.columns)
            pd.testing.assert_frame_equal(got, want, rtol=1e-9, atol=1e-12, check_names=False)


def test_the_window_keeps_the_last_candles_in_order() -> None:
    w = Window(5)
    for i in range(23):
        w.append(Candle(i * 60_000, i, i + 1, i - 1, i + 0.5, 1.0))
    f = w.frame()
    assert len(w) == 5 and f.index.tolist() == [i * 60_000 for i in range(18, 23)]
    assert f["close"].tolist() == [18.5, 19.5, 20.5, 21.5, 22.5] and f.index.dtype == np.int64
    w.pop()
    assert w.frame().index[-1] == 21 * 60_000 and 4 <= len(w) <= 5
    w.append(Candle(22 * 60_000, 22, 23, 21, 22.5, 1.0))
    assert w.frame().index.tolist()[-4:] == [i * 60_000 for i in range(19, 23)]
