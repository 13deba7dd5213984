"""LightGBM on OHLCV / indicator features: P(the forward return is positive).

Trained with LightGBM, run through ONNX Runtime once saved (``models/trees.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.src.models import trees
from backend.src.models.backends import Backends
from backend.src.models.base import Model, training_threads

MIN_ROWS = 100  # fewer usable training rows: the model stays unfitted (no opinion)
DEFAULTS: dict[str, Any] = {"max_depth": 4, "learning_rate": 0.03, "n_estimators": 300, "min_child_samples": 50,
                            "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0}


class LightGBMModel(Model):
    name = "lgbm"

    def __init__(self, features: list[str], **params: Any) -> None:
        super().__init__(features, **{**DEFAULTS, **params})
        self.booster: trees.Trees | None = None
        self._check = np.empty((0, len(self.features)))  # training rows the ONNX export is checked on

    def fit(self, X: pd.DataFrame, y: pd.Series) -> LightGBMModel:  # noqa: N803
        ok = self.usable_rows(X) & y.notna().to_numpy()
        if ok.sum() < MIN_ROWS:  # e.g. 4h features not yet available: no opinion rather than a crash
            return self
        import lightgbm as lgb  # noqa: PLC0415 - training only (the trainer install)

        p = self.params
        clf = lgb.LGBMClassifier(num_leaves=min(2 ** int(p["max_depth"]) - 1, 63), random_state=7,
                                 n_jobs=training_threads(), verbose=-1, **p)
        clf.fit(X.loc[ok, self.features], (y[ok] > 0).astype(int))  # a forward return or a 0/1 label
        self.booster = clf.booster_
        self._check = X.loc[ok, self.features].to_numpy()[-trees.CHECK_ROWS:]
        self.fitted = True
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        out = np.full(len(X), np.nan)
        vals, ok = self.inputs(X)
        if self.booster is not None and ok.any():
            out[ok] = self.booster.predict(vals[ok])
        return out

    def _save_state(self, directory: Path) -> list[Path]:
        if self.booster is None:
            return []
        path = directory / "lgbm.txt"
        self.booster.save_model(str(path))  # type: ignore[attr-defined]  # a trained LightGBM booster
        return [path, trees.export(self.booster, path.with_suffix(".onnx"), self._check)]

    def _load_state(self, directory: Path, meta: dict[str, Any], backends: Backends) -> None:
        self.booster = trees.load(directory / "lgbm.txt", native=backends.gbdt == "native")
