"""Ensemble fusion: renormalised weights, lower confidence for missing inputs, calibration,
and artifacts that reload to the same predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.src.core.errors import UsageError
from backend.src.core.settings import Settings
from backend.src.models.backends import Backends
from backend.src.models.ensemble_predictor import EnsembleConfig, EnsemblePredictor, ModelSpec, platt


def synthetic(n: int = 6000, seed: int = 3) -> tuple[pd.DataFrame, pd.Series]:
    """A learnable target: P(up) = sigmoid(1.5 * x0 - x1)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["x0", "x1", "x2"])  # noqa: N806
    p = 1 / (1 + np.exp(-(1.5 * X["x0"] - X["x1"])))
    return X, pd.Series((rng.random(n) < p).astype(float))


def config(weights: tuple[float, float] = (0.7, 0.3)) -> EnsembleConfig:
    return EnsembleConfig(models=[
        ModelSpec(name="lgbm", weight=weights[0], features=["x0", "x1", "x2"], params={"n_estimators": 80}),
        ModelSpec(name="sentiment", weight=weights[1], features=["news_score"]),
        ModelSpec(name="tft", weight=0.3, features="price_history"),  # not built: left out
    ], threshold=0.6)


def test_missing_inputs_renormalise_and_lower_confidence() -> None:
    X, y = synthetic()  # noqa: N806
    model = EnsemblePredictor(config()).fit(X.iloc[:5000], y.iloc[:5000])
    test = X.iloc[5000:].copy()
    without = model.predict(test)
    test["news_score"] = 0.0  # neutral news: same direction, more of the weight answered
    with_news = model.predict(test)
    assert without["weight_share"].eq(0.7 / 1.3).all() and with_news["weight_share"].eq(1.0 / 1.3).all()
    assert ((without["prob_up"] > 0.5) == (with_news["prob_up"] > 0.5)).mean() > 0.95
    assert without[["prob_up", "confidence"]].apply(lambda c: c.between(0, 1).all()).all()
    nothing = EnsemblePredictor(config()).predict(test)  # nothing fitted: no opinion, no failure
    assert (nothing["prob_up"] == 0.5).all() and (nothing["confidence"] == 0).all()


def test_calibration_is_reliable() -> None:
    X, y = synthetic(20000)  # noqa: N806
    model = EnsemblePredictor(config((1.0, 0.0))).fit(X.iloc[:14000], y.iloc[:14000])
    p = model.predict(X.iloc[14000:])["prob_up"].to_numpy()
    t = y.iloc[14000:].to_numpy()
    bins = np.clip((p * 10).astype(int), 0, 9)
    for b in np.unique(bins):
        sel = bins == b
        if sel.sum() >= 200:  # observed frequency within 7 points of the predicted probability
            assert abs(t[sel].mean() - p[sel].mean()) < 0.07, (b, t[sel].mean(), p[sel].mean())
    assert np.mean((p - t) ** 2) < 0.25 - 0.03  # Brier well below a coin's


def test_platt_recovers_a_known_distortion() -> None:
    rng = np.random.default_rng(0)
    true = rng.uniform(0.05, 0.95, 50000)
    y = (rng.random(50000) < true).astype(float)
    distorted = 1 / (1 + np.exp(-0.5 * np.log(true / (1 - true)) - 0.3))
    a, b = platt(distorted, y)
    assert a == pytest.approx(2.0, abs=0.1) and b == pytest.approx(-0.6, abs=0.1)


def test_platt_never_inverts_the_models() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.3, 0.7, 5000)
    y = (rng.random(5000) < 1 - p).astype(float)  # anti-predictive out of sample
    a, b = platt(p, y)
    assert a == 0.0 and 1 / (1 + np.exp(-b)) == pytest.approx(y.mean(), abs=1e-6)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    X, y = synthetic()  # noqa: N806
    model = EnsemblePredictor(config()).fit(X, y)
    files = model.save(tmp_path / "m")
    assert {f.name for f in files} == {"ensemble.json", "lgbm.json", "lgbm.txt", "lgbm.onnx", "sentiment.json",
                                       "tft.json"}
    again = EnsemblePredictor.load(tmp_path / "m")  # the boosters now run through ONNX Runtime
    assert type(again.models["lgbm"].booster).__name__ == "OnnxTrees"
    pd.testing.assert_frame_equal(again.predict(X.iloc[:500]), model.predict(X.iloc[:500]), rtol=0, atol=1e-5)


def test_native_backend_reads_the_text_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = synthetic()  # noqa: N806
    model = EnsemblePredictor(config()).fit(X, y)
    model.save(tmp_path / "m")
    monkeypatch.setenv("LEVIBOT_GBDT_BACKEND", "native")
    again = EnsemblePredictor.load(tmp_path / "m", Backends.of(Settings()))  # the environment, in the settings
    assert type(again.models["lgbm"].booster).__name__ == "Booster"
    pd.testing.assert_frame_equal(again.predict(X.iloc[:500]), model.predict(X.iloc[:500]))


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "e.yaml"
    bad.write_text("models: [{name: lgbm, weight: -1}]\nthreshold: 0.6\n")
    with pytest.raises(UsageError, match=r"models\.0\.weight"):
        EnsembleConfig.load(bad)
    bad.write_text("models: [{name: lgbm, weight: 1, features: candles}]\n")
    with pytest.raises(UsageError, match="unknown feature set 'candles'"):
        EnsembleConfig.load(bad)
    bad.write_text("models: [{name: lgbm, weight: 1}]\nthreshold: 1.5\n")
    with pytest.raises(UsageError, match="threshold"):
        EnsembleConfig.load(bad)


def test_a_variant_fuses_the_fitted_models_as_a_fresh_fit_would() -> None:
    """Research compares the ensemble with its parts without refitting: a variant over a subset of the fitted
    models predicts what fitting that subset from scratch predicts (same rows calibrated on)."""
    X, y = synthetic()  # noqa: N806
    X["news_score"] = np.tanh(X["x0"] + np.random.default_rng(4).normal(size=len(X)))  # a noisy second opinion
    full = EnsemblePredictor(config()).fit(X.iloc[:5000], y.iloc[:5000])
    only = config().only("lgbm")
    via_variant = full.variant(only, X.iloc[:5000], y.iloc[:5000]).predict(X.iloc[5000:])
    fresh = EnsemblePredictor(only).fit(X.iloc[:5000], y.iloc[:5000]).predict(X.iloc[5000:])
    pd.testing.assert_frame_equal(via_variant, fresh)
    assert not np.allclose(full.predict(X.iloc[5000:])["prob_up"], fresh["prob_up"]), "the full fusion differs"


def test_the_last_row_alone_is_the_last_row_of_all() -> None:
    """An engine asks for its window's last row only (the trees read that row, the TFT the rows before it)."""
    X, y = synthetic()  # noqa: N806
    model = EnsemblePredictor(config()).fit(X.iloc[:5000], y.iloc[:5000])
    window = X.iloc[5000:5048]
    pd.testing.assert_frame_equal(model.predict(window, last=True), model.predict(window).iloc[-1:])
