"""Weighted fusion of the models into ``prob_up`` and ``confidence`` in [0, 1].

Config (YAML, the sprint plan's shape)::

    models:
      - {name: lgbm, weight: 0.5, features: technical}
      - {name: tft, weight: 0.3, features: price_history}
      - {name: sentiment, weight: 0.2, features: [news_score, social_score]}
    returns: {name: lgbm_quantiles, features: multi_tf}   # optional: the forward return's quartiles
    voting: weighted_average
    horizon: 12          # bars: the target is the return from the next open to the open 12 bars later
    threshold: 0.55      # the decision layer (backend/src/trading/strategies/decision.py): enter at P(up) >= this
    exit_threshold: 0.5  # ... hold while P(up) >= this
    min_hold: 6          # ... and for at least this many candles
    edge: 1.0            # ... enter only when the expected return exceeds edge x the round-trip cost
    vol_target: 0.3      # ... size a position to 30 % annualised volatility (0: the whole target)
    kelly_cap: 0.25      # ... and never above a quarter of the Kelly bet (needs the returns model)

A model with no opinion on a row (missing input, not trained, not built) is left out and the
remaining weights renormalised; confidence shrinks by the share of weight that answered.
The fused probability is Platt-calibrated on the last part of the training window. Models are
fitted on the forward return itself: classifiers learn its sign, the return model its quartiles;
the expected return is (2·P(up) − 1) × the mean absolute move the quartiles imply (IQR / 1.349 × √(2/π)).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from backend.src.core.errors import UsageError
from backend.src.models import lgbm, quantiles, sentiment_model, tft  # noqa: F401 - register the model classes
from backend.src.models.backends import ONNX, Backends
from backend.src.models.base import Model
from backend.src.models.feature_pipeline import FEATURES
from backend.src.models.multi_tf import MARKET_FEATURES, NORMALISED, htf_feature_names, timeframes_for

FIVE_MINUTES_MS = 300_000


def feature_sets(base_ms: int = FIVE_MINUTES_MS) -> dict[str, list[str]]:
    """The named feature sets over candles of ``base_ms``: ``multi_tf`` reads the three timeframes above the
    base (15m/1h/4h over 5m candles, 4h/1d/1w over hourly ones)."""
    multi = [*FEATURES, *htf_feature_names(timeframes_for(base_ms)), *NORMALISED]
    return {"technical": FEATURES, "multi_tf": multi, "market": [*multi, *MARKET_FEATURES],
            "price_history": ["ret_1", "vol_12", "vol_48"]}


FEATURE_SETS = feature_sets()
MULTI_TF = FEATURE_SETS["multi_tf"]
ABS_MOVE = math.sqrt(2 / math.pi) / 1.349  # mean |x| of a normal per unit of its inter-quartile range


class ModelSpec(BaseModel):
    name: str
    weight: float = Field(default=1.0, ge=0)
    features: list[str] | str = "technical"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("features")
    @classmethod
    def _known_set(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, str) and v not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {v!r} (known: {', '.join(FEATURE_SETS)})")
        return v

    def feature_list(self, base_ms: int = FIVE_MINUTES_MS) -> list[str]:
        if isinstance(self.features, str):
            return list(feature_sets(base_ms)[self.features])
        return list(self.features)


class EnsembleConfig(BaseModel):
    models: list[ModelSpec] = Field(min_length=1)
    returns: ModelSpec | None = None
    voting: Literal["weighted_average"] = "weighted_average"
    horizon: int = Field(default=12, ge=1, le=2000)
    threshold: float = Field(default=0.6, ge=0.5, lt=1.0)
    exit_threshold: float = Field(default=0.5, ge=0.5, lt=1.0)
    min_hold: int = Field(default=0, ge=0)
    edge: float = Field(default=0.0, ge=0)
    vol_target: float = Field(default=0.0, ge=0, le=10)  # annualised; 0: every position is the whole target
    kelly_cap: float = Field(default=0.0, ge=0, le=1)  # fraction of the Kelly bet a position never exceeds

    @model_validator(mode="after")
    def _consistent(self) -> EnsembleConfig:
        if self.exit_threshold > self.threshold:
            raise ValueError(f"exit_threshold: {self.exit_threshold} is above threshold {self.threshold}")
        if self.edge > 0 and self.returns is None:
            raise ValueError("edge: needs a returns model (returns: {name: lgbm_quantiles})")
        if self.kelly_cap > 0 and self.returns is None:
            raise ValueError("kelly_cap: needs a returns model (returns: {name: lgbm_quantiles})")
        return self

    def without(self, name: str) -> EnsembleConfig:
        return self.model_copy(update={"models": [s for s in self.models if s.name != name]})

    def only(self, name: str) -> EnsembleConfig:
        return self.model_copy(update={"models": [s for s in self.models if s.name == name]})

    @classmethod
    def load(cls, path: Path) -> EnsembleConfig:
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()))
        except OSError as exc:
            raise UsageError(f"ensemble config {path}: {exc.strerror or exc}") from exc
        except ValidationError as exc:
            err = exc.errors()[0]
            raise UsageError(f"ensemble config {path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from exc


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(p / (1 - p)), dtype=float)


def platt(p: np.ndarray, y: np.ndarray, iters: int = 200) -> tuple[float, float]:
    """Fit sigmoid(a * logit(p) + b) to labels by Newton's method on the log loss."""
    x, a, b = logit(p), 1.0, 0.0
    for _ in range(iters):
        q = 0.5 * (1 + np.tanh(0.5 * (a * x + b)))  # the logistic without overflow when Newton steps make a large
        g = np.array([np.sum((q - y) * x), np.sum(q - y)])
        w = q * (1 - q) + 1e-9
        h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-8:
            break
    if a < 0:  # out of sample the models point the wrong way: no skill, never invert them
        rate = float(np.clip(np.mean(y), 1e-3, 1 - 1e-3))
        return 0.0, math.log(rate / (1 - rate))
    return float(a), float(b)


def annual_vol(X: pd.DataFrame) -> np.ndarray:  # noqa: N803
    """The market's current volatility, annualised, per row: of the daily returns over 12 days where the
    features have them (hourly candles), else of the base candles' returns over 48 bars; NaN without either."""
    if "tf1d_vol_12" in X:
        return np.asarray(X["tf1d_vol_12"].to_numpy(dtype=float) * math.sqrt(365))
    if "vol_48" in X and len(X) > 1:
        bar_ms = float(np.median(np.diff(X.index.to_numpy(dtype=float))))
        if bar_ms > 0:
            return np.asarray(X["vol_48"].to_numpy(dtype=float) * math.sqrt(365 * 86_400_000 / bar_ms))
    return np.full(len(X), np.nan)


class EnsemblePredictor:
    def __init__(self, config: EnsembleConfig, models: dict[str, Model] | None = None,
                 calibration: tuple[float, float] = (1.0, 0.0), timeframe_ms: int = FIVE_MINUTES_MS) -> None:
        self.config = config
        specs = [*config.models, *([config.returns] if config.returns else [])]
        self.models = models if models is not None else {
            s.name: Model.registry[s.name](s.feature_list(timeframe_ms), **s.params)
            for s in specs if s.name in Model.registry}
        self.calibration = calibration

    @property
    def threshold(self) -> float:
        return self.config.threshold

    def fit(self, X: pd.DataFrame, y: pd.Series, calib_frac: float = 0.2) -> EnsemblePredictor:  # noqa: N803
        """``y``: the forward return over the horizon (a 0/1 label works for the classifiers alone)."""
        cut = int(len(X) * (1 - calib_frac))
        for m in self.models.values():
            if m.frozen or not set(m.features) <= set(X.columns):
                continue  # trained elsewhere, or its inputs are absent: it stays without an opinion
            m.fit(X.iloc[:cut], y.iloc[:cut])
        self.calibrate(X.iloc[cut:], y.iloc[cut:])
        return self

    def calibrate(self, X: pd.DataFrame, y: pd.Series) -> None:  # noqa: N803
        """Platt scaling of the fused probability on rows the models were not fitted on."""
        raw = self.fuse(X)[0]
        ok = ~np.isnan(raw) & y.notna().to_numpy()
        if ok.sum() >= 50:
            self.calibration = platt(raw[ok], (y.to_numpy()[ok] > 0).astype(float))

    def variant(self, config: EnsembleConfig, X: pd.DataFrame, y: pd.Series,  # noqa: N803
                calib_frac: float = 0.2) -> EnsemblePredictor:
        """The same fitted models fused by another config (a subset, other weights), calibrated on the same
        rows ``fit`` calibrated on: research compares the ensemble with its parts without refitting them."""
        other = EnsemblePredictor(config, dict(self.models))
        cut = int(len(X) * (1 - calib_frac))
        other.calibrate(X.iloc[cut:], y.iloc[cut:])
        return other

    def fuse(self, X: pd.DataFrame, last: bool = False) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        """(uncalibrated fused P(up), share of the total weight that answered) per row (``last``: the last row
        only — a sequence model still reads every row before it, the others only that one)."""
        total = sum(s.weight for s in self.config.models) or 1.0
        n = 1 if last else len(X)
        num, den = np.zeros(n), np.zeros(n)
        for spec in self.config.models:
            model = self.models.get(spec.name)
            if model is None or not model.fitted or spec.weight == 0:
                continue
            p = model.predict_proba(X)[-1:] if last and model.sequence else model.predict_proba(X.iloc[-n:])
            ok = ~np.isnan(p)
            num[ok] += spec.weight * p[ok]
            den[ok] += spec.weight
        with np.errstate(invalid="ignore", divide="ignore"):
            fused = np.where(den > 0, num / den, np.nan)
        return fused, den / total

    def predict(self, X: pd.DataFrame, last: bool = False) -> pd.DataFrame:  # noqa: N803
        """The forecast per row of ``X`` (``last``: of its last row only, what an engine needs per candle; the
        rows before it are the sequence models' history)."""
        fused, share = self.fuse(X, last)
        vol = annual_vol(X)
        X = X.iloc[-1:] if last else X  # noqa: N806
        a, b = self.calibration
        cal = 0.5 * (1 + np.tanh(0.5 * (a * logit(np.nan_to_num(fused, nan=0.5)) + b)))  # the logistic, no overflow
        cal = np.where(np.isnan(fused), 0.5, cal)
        q = np.full((len(X), 3), np.nan)
        ret_model = self.models.get(self.config.returns.name) if self.config.returns else None
        if isinstance(ret_model, quantiles.ReturnQuantiles) and ret_model.fitted:
            q = ret_model.predict_quantiles(X)
        cols = {"prob_up": cal, "confidence": np.abs(2 * cal - 1) * share, "weight_share": share,
                "ret_q25": q[:, 0], "ret_q50": q[:, 1], "ret_q75": q[:, 2],
                "exp_return": np.where(np.isnan(fused), np.nan, (2 * cal - 1) * (q[:, 2] - q[:, 0]) * ABS_MOVE),
                "sigma": (q[:, 2] - q[:, 0]) / 1.349,  # the forward return's standard deviation, were it normal
                "vol": vol[-len(X):]}
        return pd.DataFrame(cols, index=X.index)  # one frame built once: an engine pays this per candle

    def save(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        files = []
        for m in self.models.values():
            files += m.save(directory)
        meta = directory / "ensemble.json"
        meta.write_text(json.dumps({"config": self.config.model_dump(), "calibration": list(self.calibration),
                                    "models": list(self.models)}, indent=1))
        return [meta, *files]

    @classmethod
    def load(cls, directory: Path, backends: Backends = ONNX) -> EnsemblePredictor:
        meta = json.loads((directory / "ensemble.json").read_text())
        models = {name: Model.load(directory, name, backends) for name in meta["models"]}
        a, b = meta["calibration"]
        if not (math.isfinite(a) and math.isfinite(b)):
            raise UsageError(f"{directory}: calibration is not finite")
        return cls(EnsembleConfig.model_validate(meta["config"]), models, (a, b))
