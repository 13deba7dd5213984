"""Features never use the future; the incremental cache equals a full recomputation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.src.models.ensemble_predictor import FEATURE_SETS
from backend.src.models.feature_pipeline import (
    FEATURES,
    build,
    forward_return,
    join_asof,
    label_up,
    load_ohlcv,
    main,
    update_cache,
)
from backend.tests.conftest import OHLCV_DIR

ETH = OHLCV_DIR / "ETH_BTC-5m.csv"


@pytest.fixture(scope="module")
def eth() -> pd.DataFrame:
    return load_ohlcv(ETH)


def test_features_at_t_do_not_depend_on_later_candles(eth: pd.DataFrame) -> None:
    full = build(eth)
    for cut in (300, 1777, 4000):
        part = build(eth.iloc[:cut])
        pd.testing.assert_frame_equal(part, full.iloc[:cut])
    assert list(full.columns) == FEATURE_SETS["multi_tf"]
    assert full[FEATURES].iloc[100:].notna().all().all(), "5m features after 100 candles"
    assert full.iloc[1000:].notna().all().all(), "4h features once 15 four-hour bars have closed"


def test_a_changed_future_does_not_change_the_past(eth: pd.DataFrame) -> None:
    shocked = eth.copy()
    shocked.iloc[3000:, :4] *= 3.0  # any later price path
    pd.testing.assert_frame_equal(build(shocked).iloc[:3000], build(eth).iloc[:3000])


def test_label_is_the_return_a_decision_can_earn(eth: pd.DataFrame) -> None:
    """Decided at bar t's close, filled at bar t+1's open, out at the open 12 bars later."""
    y, r = label_up(eth, 12), forward_return(eth, 12)
    assert y.iloc[-13:].isna().all() and y.iloc[:-13].notna().all()
    assert r.iloc[0] == pytest.approx(np.log(eth["open"].iloc[13] / eth["open"].iloc[1]))
    assert y.iloc[0] == float(eth["open"].iloc[13] > eth["open"].iloc[1])


def test_asof_join_uses_only_published_values(eth: pd.DataFrame) -> None:
    feats = build(eth.iloc[:200])
    tf = 300_000
    t = int(feats.index[150])
    news = pd.DataFrame({"score": [0.7, -0.4]}, index=[t + tf, t + tf + 1])  # at bar 150's close, then 1 ms later
    joined = join_asof(feats, news, tf, "news_")
    assert joined.loc[t, "news_score"] == 0.7
    assert np.isnan(joined.loc[feats.index[149], "news_score"])
    assert joined.loc[feats.index[151], "news_score"] == -0.4


def test_incremental_update_equals_full(tmp_path: Path) -> None:
    src = tmp_path / "ETH_BTC-5m.csv"
    lines = ETH.read_text().splitlines()
    src.write_text("\n".join(lines[:3001]) + "\n")
    path, n = update_cache(src, tmp_path)
    assert n == 3000
    src.write_text("\n".join(lines) + "\n")
    path, n = update_cache(src, tmp_path)
    assert n == len(lines) - 1 - 3000
    cached = pd.read_parquet(path)
    full = build(load_ohlcv(src))
    pd.testing.assert_frame_equal(cached, full, check_exact=False, atol=1e-12, rtol=1e-9)
    assert update_cache(src, tmp_path)[1] == 0


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ohlcv").mkdir()
    assert main(["--ohlcv-dir", str(tmp_path / "ohlcv"), "--data-dir", str(tmp_path)]) == 2
    assert "--ohlcv-dir: no .csv or .parquet" in capsys.readouterr().err
    shutil.copy(ETH, tmp_path / "ohlcv")
    assert main(["--ohlcv-dir", str(tmp_path / "ohlcv"), "--data-dir", str(tmp_path), "--update"]) == 0
    assert (tmp_path / "features" / "ETH_BTC-5m.parquet").exists()

