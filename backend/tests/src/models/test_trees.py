"""LightGBM boosters exported to ONNX: the same outputs as LightGBM, on features float32 cannot split."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from backend.src.core.settings import Settings
from backend.src.models import trees
from backend.src.models.backends import Backends


def data(n: int = 6000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 6))
    x[:, 0] = 60_000 + np.round(x[:, 0] * 50, 3)  # a price: float32 steps by 0.004 here
    x[:, 1] = np.round(x[:, 1], 1)  # many repeated values: thresholds sit between neighbours
    y = np.sin((x[:, 0] - 60_000) / 7) + x[:, 1] + 0.3 * rng.normal(size=n)
    return x, y


@pytest.mark.parametrize("kind", ["binary", "quantile"])
def test_onnx_equals_lightgbm(tmp_path: Path, kind: str) -> None:
    x, y = data()
    est = (lgb.LGBMClassifier(n_estimators=200, num_leaves=31, verbose=-1) if kind == "binary" else
           lgb.LGBMRegressor(objective="quantile", alpha=0.25, n_estimators=200, num_leaves=31, verbose=-1))
    est.fit(x[:4000], (y[:4000] > 0).astype(int) if kind == "binary" else y[:4000])
    booster = est.booster_
    path = trees.export(booster, tmp_path / "m.onnx", x[:4000])
    onnx = trees.OnnxTrees(path).predict(x)
    assert np.max(np.abs(onnx - booster.predict(x))) < 1e-6  # training rows and rows never seen
    # what a float32 graph (onnxmltools') sees would not pass: rounding moves rows across thresholds
    assert np.max(np.abs(booster.predict(x.astype(np.float32).astype(float)) - booster.predict(x))) > 1e-3


def test_load_prefers_onnx_and_native_on_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = data(800)
    booster = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, (y > 0).astype(int)).booster_
    booster.save_model(str(tmp_path / "b.txt"))
    trees.export(booster, tmp_path / "b.onnx", x)
    assert isinstance(trees.load(tmp_path / "b.txt"), trees.OnnxTrees)
    monkeypatch.setenv("LEVIBOT_GBDT_BACKEND", "native")
    native = Backends.of(Settings()).gbdt == "native"  # the environment, read into the settings
    assert isinstance(trees.load(tmp_path / "b.txt", native=native), lgb.Booster)
    assert trees.load(tmp_path / "none.txt") is None


def test_a_differing_export_is_refused(tmp_path: Path) -> None:
    x, y = data(800)
    booster = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, (y > 0).astype(int)).booster_
    other = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, (y < 0).astype(int)).booster_

    class Mixed:  # exports one booster, is checked against another
        def dump_model(self) -> dict:
            return booster.dump_model()

        def predict(self, rows: np.ndarray) -> np.ndarray:
            return other.predict(rows)

    with pytest.raises(ValueError, match="differs from LightGBM"):
        trees.export(Mixed(), tmp_path / "m.onnx", x)
    assert not (tmp_path / "m.onnx").exists()


def test_objectives_without_an_onnx_form_are_refused() -> None:
    x, y = data(800)
    multi = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, np.digitize(y, [-1, 1])).booster_
    with pytest.raises(ValueError, match="no ONNX form"):
        trees.graph(multi.dump_model())
