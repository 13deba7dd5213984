"""News / social sentiment in [-1, +1] mapped to a probability of an up move.

No opinion (NaN) when there is no recent news: the ensemble then renormalises its weights.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.src.models.base import Model


class SentimentModel(Model):
    name = "sentiment"

    def __init__(self, features: list[str], **params: object) -> None:
        super().__init__(features, **params)
        self.fitted = True  # a fixed mapping: usable without training data

    def fit(self, X: pd.DataFrame, y: pd.Series) -> SentimentModel:  # noqa: N803
        return self  # a fixed mapping; its weight in the ensemble is what gets tuned

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        cols = [c for c in self.features if c in X.columns]
        if not cols:
            return np.full(len(X), np.nan)
        score = X[cols].mean(axis=1, skipna=True).to_numpy(dtype=float)
        span = float(self.params.get("max_edge", 0.15))  # a headline moves P(up) at most this far
        return np.asarray(0.5 + span * np.clip(score, -1.0, 1.0), dtype=float)
