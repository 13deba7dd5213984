"""The forward return's distribution: LightGBM quantile regressions of its quartiles.

The classifiers say which way; this says how far — the decision layer enters only when the
expected move pays the round-trip costs. Three boosters (0.25, 0.5, 0.75), sorted per row so
the quartiles never cross.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.src.models import trees
from backend.src.models.backends import Backends
from backend.src.models.base import Model, training_threads
from backend.src.models.lgbm import DEFAULTS, MIN_ROWS

QUANTILES = (0.25, 0.5, 0.75)


class ReturnQuantiles(Model):
    name = "lgbm_quantiles"

    def __init__(self, features: list[str], **params: Any) -> None:
        super().__init__(features, **{**DEFAULTS, **params})
        self.boosters: list[trees.Trees] = []
        self._check = np.empty((0, len(self.features)))  # training rows the ONNX exports are checked on

    def fit(self, X: pd.DataFrame, y: pd.Series) -> ReturnQuantiles:  # noqa: N803
        ok = self.usable_rows(X) & y.notna().to_numpy()
        if ok.sum() < MIN_ROWS:  # e.g. 4h features not yet available: no opinion rather than a crash
            return self
        import lightgbm as lgb  # noqa: PLC0415 - training only (the trainer install)

        p = self.params
        self.boosters = []
        for q in QUANTILES:
            reg = lgb.LGBMRegressor(objective="quantile", alpha=q, num_leaves=min(2 ** int(p["max_depth"]) - 1, 63),
                                    random_state=7, n_jobs=training_threads(), verbose=-1, **p)
            reg.fit(X.loc[ok, self.features], y[ok].astype(float))
            self.boosters.append(reg.booster_)
        self._check = X.loc[ok, self.features].to_numpy()[-trees.CHECK_ROWS:]
        self.fitted = True
        return self

    def predict_quantiles(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """(rows, 3) quartiles of the forward log return; NaN rows where an input is missing."""
        out = np.full((len(X), len(QUANTILES)), np.nan)
        vals, ok = self.inputs(X)
        if len(self.boosters) == len(QUANTILES) and ok.any():
            x = vals[ok]
            out[ok] = np.sort(np.column_stack([b.predict(x) for b in self.boosters]), axis=1)
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return np.full(len(X), np.nan)  # no vote on the direction: the classifiers give it

    def _save_state(self, directory: Path) -> list[Path]:
        paths = [directory / f"lgbm_q{int(q * 100)}.txt" for q in QUANTILES]
        written = []
        for booster, path in zip(self.boosters, paths, strict=False):
            booster.save_model(str(path))  # type: ignore[attr-defined]  # a trained LightGBM booster
            written += [path, trees.export(booster, path.with_suffix(".onnx"), self._check)]
        return written

    def _load_state(self, directory: Path, meta: dict[str, Any], backends: Backends) -> None:
        paths = [directory / f"lgbm_q{int(q * 100)}.txt" for q in QUANTILES]
        loaded = [b for b in (trees.load(p, native=backends.gbdt == "native") for p in paths) if b is not None]
        self.boosters = loaded if len(loaded) == len(paths) else []  # all three quartiles, or no opinion
