"""The TFT: its fast batch equals pytorch-forecasting's own dataset path, it never looks ahead,
and it reloads to the same forecasts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.src.core.settings import Settings
from backend.src.models.backends import Backends
from backend.src.models.base import Model
from backend.src.models.feature_pipeline import build, load_ohlcv
from backend.src.models.tft import TFTModel
from backend.tests.conftest import OHLCV_DIR

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def feats() -> pd.DataFrame:
    return build(load_ohlcv(OHLCV_DIR / "ETH_BTC-5m.csv"))


@pytest.fixture(scope="module")
def tft(feats: pd.DataFrame) -> TFTModel:
    train = pd.concat([feats.iloc[:3000].assign(symbol="ETHBTC"),
                       build(load_ohlcv(OHLCV_DIR / "LTC_BTC-5m.csv")).iloc[:3000].assign(symbol="LTCBTC")])
    return TFTModel(["ret_1", "vol_12", "vol_48"], hidden_size=16, epochs=1, max_train_samples=2000).fit(
        train, pd.Series(dtype=float))


def test_fast_path_equals_the_dataset_path(tft: TFTModel, feats: pd.DataFrame) -> None:
    test = feats.iloc[3000:3400]
    fast, ref = tft.predict_proba(test), tft.predict_with_dataset(test)
    assert np.isnan(fast[:47]).all() and np.isnan(ref[:47]).all()
    np.testing.assert_allclose(fast[47:], ref[47:], atol=1e-5)
    assert ((fast[47:] > 0) & (fast[47:] < 1)).all() and fast[47:].std() > 0


def test_no_look_ahead(tft: TFTModel, feats: pd.DataFrame) -> None:
    full = tft.predict_proba(feats.iloc[3000:3400])
    cut = tft.predict_proba(feats.iloc[3000:3200])
    np.testing.assert_allclose(cut, full[:200], atol=1e-6, equal_nan=True)
    last_only = tft.predict_proba(feats.iloc[3152:3200])  # exactly one encoder window: the live case
    assert last_only[-1] == pytest.approx(full[199], abs=1e-6)


def test_several_symbols_in_one_frame(tft: TFTModel, feats: pd.DataFrame) -> None:
    a, b = feats.iloc[3000:3100].assign(symbol="A"), feats.iloc[4000:4100].assign(symbol="B")
    both = tft.predict_proba(pd.concat([a, b]))
    np.testing.assert_allclose(both[100:], tft.predict_proba(b), atol=1e-6, equal_nan=True)


def test_save_and_load(tft: TFTModel, feats: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = tft.save(tmp_path)
    assert sorted(f.name for f in files) == ["tft.json", "tft.onnx", "tft.pt", "tft_runtime.json"]
    test = feats.iloc[3000:3100]
    monkeypatch.setenv("LEVIBOT_TFT_BACKEND", "torch")
    again = Model.load(tmp_path, "tft", Backends.of(Settings()))  # the environment, read into the settings
    assert again.backend == "torch"  # type: ignore[attr-defined]
    np.testing.assert_allclose(again.predict_proba(test), tft.predict_proba(test), atol=1e-7, equal_nan=True)


def test_onnx_runtime_matches_torch_on_held_out_data(tft: TFTModel, feats: pd.DataFrame, tmp_path: Path) -> None:
    """What engines run: the ONNX graph through ONNX Runtime, on candles the model never saw."""
    tft.save(tmp_path)
    runtime = Model.load(tmp_path, "tft")
    assert runtime.backend == "onnx" and runtime.net is None  # type: ignore[attr-defined]
    held_out = feats.iloc[3000:4000]
    got, want = runtime.predict_proba(held_out), tft.predict_proba(held_out)
    assert np.isnan(got[:47]).all() and not np.isnan(got[47:]).any()
    assert float(np.max(np.abs(got[47:] - want[47:]))) <= 1e-4
