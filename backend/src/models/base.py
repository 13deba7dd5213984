"""One interface for every model of the ensemble: ``fit``, ``predict_proba`` (P(up) per row,
NaN where the model has no opinion), ``save`` and ``load``.

Artifacts are plain files: JSON, LightGBM text models; the TFT's torch file also carries its
dataset parameters (pickled normalisers), so it is loaded only after the registry verified
its sha256 against the model's metadata.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from backend.src.models.backends import ONNX, Backends


def training_threads() -> int:
    """Threads one model fit may use (LightGBM, torch): ``OMP_NUM_THREADS`` when set (the OpenMP convention;
    the tests set 1 so parallel test workers do not oversubscribe the cores), else 2."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 2


class Model(ABC):
    name: ClassVar[str]
    registry: ClassVar[dict[str, type[Model]]] = {}

    def __init__(self, features: list[str], **params: Any) -> None:
        self.features = list(features)
        self.params = params
        self.fitted = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Model.registry[cls.name] = cls

    @abstractmethod
    def fit(self, X: pd.DataFrame, y: pd.Series) -> Model: ...  # noqa: N803 - ML convention

    @abstractmethod
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...  # noqa: N803

    def save(self, directory: Path) -> list[Path]:
        """Write the model under ``directory``; returns the files written."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = directory / f"{self.name}.json"
        meta.write_text(json.dumps({"name": self.name, "features": self.features, "params": self.params,
                                    "fitted": self.fitted, **self._extra_meta()}, indent=1))
        return [meta, *self._save_state(directory)]

    @classmethod
    def load(cls, directory: Path, name: str, backends: Backends = ONNX) -> Model:
        meta = json.loads((directory / f"{name}.json").read_text())
        model = cls.registry[meta["name"]](meta["features"], **meta["params"])
        model.fitted = bool(meta["fitted"])
        model._load_state(directory, meta, backends)
        return model

    def _extra_meta(self) -> dict[str, Any]:
        return {}

    def _save_state(self, directory: Path) -> list[Path]:
        return []

    def _load_state(self, directory: Path, meta: dict[str, Any], backends: Backends) -> None:
        return None

    frozen: bool = False  # trained elsewhere; an ensemble's fit() leaves it as it is
    sequence: ClassVar[bool] = False  # its forecast for a row reads the rows before it (the TFT's encoder)

    def usable_rows(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self.inputs(X)[1]

    def inputs(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        """(the model's feature values, rows where every one is present); all rows unusable when a column is
        missing. One selection in numpy: an engine pays this per model per candle."""
        if not set(self.features) <= set(X.columns):
            return np.zeros((len(X), len(self.features))), np.zeros(len(X), dtype=bool)
        vals = X[self.features].to_numpy(dtype=float)
        return vals, ~np.isnan(vals).any(axis=1)


TFT_COLUMN = "tft_prob"


class Precomputed(Model):
    """Probabilities computed once (e.g. a TFT over whole series, causally) and read from a feature
    column: what does not change between backtest folds or tuning trials is not recomputed, and
    pooled rows of several pairs (same timestamps) each carry their own."""

    name = "precomputed"
    frozen = True

    def __init__(self, column: str = TFT_COLUMN) -> None:
        super().__init__([column])
        self.column = column
        self.fitted = True

    def fit(self, X: pd.DataFrame, y: pd.Series) -> Precomputed:  # noqa: N803
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        if self.column not in X.columns:
            return np.full(len(X), np.nan)
        return np.asarray(X[self.column].to_numpy(dtype=float), dtype=float)
