"""The ensemble as an engine strategy: news from Redis as a feature, SMA fallback, verified loading."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from backend.src.core.keys import Keys
from backend.src.market.candles import load_candles
from backend.src.models.ensemble_predictor import EnsembleConfig, EnsemblePredictor, ModelSpec
from backend.src.models.feature_pipeline import build, forward_return, label_up, load_ohlcv
from backend.src.models.registry import Registry
from backend.src.trading.feeds import SentimentReader
from backend.src.trading.strategies.baselines import SmaCrossover
from backend.src.trading.strategies.ensemble import EnsembleStrategy, ModelWatcher, build_ml_strategy
from backend.tests.conftest import OHLCV_DIR

ETH = OHLCV_DIR / "ETH_BTC-5m.csv"


@pytest.fixture(scope="module")
def model() -> EnsemblePredictor:
    df = load_ohlcv(ETH)
    cfg = EnsembleConfig(models=[ModelSpec(name="lgbm", weight=0.5, params={"n_estimators": 30}),
                                 ModelSpec(name="sentiment", weight=0.5, features=["news_score"])])
    fitted = EnsemblePredictor(cfg).fit(build(df).iloc[:3000], label_up(df, 12).iloc[:3000])
    fitted.calibration = (1.0, 0.0)  # the plumbing under test, not this weak model's calibration
    return fitted


def test_sentiment_reader(r: redis.Redis, ns: str) -> None:
    keys, now = Keys(ns), time.time()
    reader = SentimentReader(r, keys, "ETHBTC", max_age_s=900, clock=lambda: now)
    assert reader() == {}
    r.hset(keys.sentiment("ETHBTC"), mapping={"mean": 0.5, "count": 3, "decayed": 0.4, "updated_at": now - 60})
    assert reader() == {"news_score": 0.4}
    r.hset(keys.sentiment("ETHBTC"), "updated_at", now - 1000)
    assert reader() == {}, "stale"
    down = SentimentReader(redis.Redis(port=1, socket_connect_timeout=0.2), keys, "ETHBTC", 900)
    assert down() == {}


def test_news_moves_the_signal_and_the_confidence(model: EnsemblePredictor) -> None:
    candles, _ = load_candles(ETH)
    news: dict[str, float] = {}
    s = EnsembleStrategy(model, "v1", SmaCrossover(10, 30), extras=lambda: dict(news))
    s.warmup(candles[3000:3200])
    quiet = s.on_candle(candles[3200])
    signals = {}
    for score in (-1.0, 1.0):
        s.candles.pop()
        news["news_score"] = score
        signals[score] = s.on_candle(candles[3200])
    assert quiet is not None and signals[-1.0] is not None and signals[1.0] is not None
    assert signals[-1.0].prob_up < quiet.prob_up and signals[-1.0].prob_up < signals[1.0].prob_up
    assert "ensemble v1" in quiet.reason


def test_a_failing_model_falls_back_to_the_sma(model: EnsemblePredictor) -> None:
    class Broken:
        threshold = 0.6
        config = EnsembleConfig(models=[ModelSpec(name="lgbm")])

        def predict(self, _x: object) -> object:
            raise RuntimeError("corrupt weights")

    candles, _ = load_candles(ETH)
    s = EnsembleStrategy(Broken(), "bad", SmaCrossover(10, 30))
    s.warmup(candles[:200])
    sig = s.on_candle(candles[200])
    assert sig is not None and sig.reason.startswith("sma10/30")


def test_hot_reload_and_fallback_to_the_model_in_use(model: EnsemblePredictor, tmp_path: Path) -> None:
    root = tmp_path / "models"
    candles, _ = load_candles(ETH)
    w = build_ml_strategy(10, 30, root)
    assert isinstance(w, ModelWatcher) and w.active is w.fallback  # no model yet: the SMA
    w.warmup(candles[:200])
    assert (sig := w.on_candle(candles[200])) is not None and sig.reason.startswith("sma")
    reg = Registry(root)
    v1 = reg.save(model.save, {})
    reg.promote(v1)
    sig = w.on_candle(candles[201])  # picked up before the very next candle
    assert w.version == v1 and sig is not None and sig.reason.startswith(f"ensemble {v1}")
    v2 = reg.save(model.save, {})
    reg.promote(v2)
    w.on_candle(candles[202])
    assert w.version == v2
    v3 = reg.save(model.save, {})
    reg.promote(v3)
    (root / v3 / "lgbm.txt").write_text("tree\n")  # broken after promotion
    sig = w.on_candle(candles[203])
    assert w.version == v2 and w.skipped == v3 and sig is not None and sig.reason.startswith(f"ensemble {v2}")


def test_tampered_or_missing_production_model_means_sma(model: EnsemblePredictor, tmp_path: Path) -> None:
    root = tmp_path / "models"
    w = build_ml_strategy(10, 30, root)
    assert isinstance(w, ModelWatcher) and w.version is None
    reg = Registry(root)
    v = reg.save(model.save, {})
    reg.promote(v)
    (root / v / "lgbm.txt").write_text("tree\n")
    w = build_ml_strategy(10, 30, root)
    assert isinstance(w, ModelWatcher) and w.version is None and w.active is w.fallback
    assert isinstance(build_ml_strategy(10, 30, None), SmaCrossover)


def test_the_engine_sees_what_the_backtest_saw_and_pays_for_its_trades() -> None:
    """Features from the engine's candle window (15m/1h/4h included) give the prediction the walk-forward
    computes from the whole file; an entry needs the expected return to pay the round trip."""
    df = load_ohlcv(ETH)
    spec = {"features": "multi_tf", "params": {"n_estimators": 30, "min_child_samples": 100}}
    cfg = EnsembleConfig(models=[ModelSpec(name="lgbm", **spec)], returns=ModelSpec(name="lgbm_quantiles", **spec),
                         threshold=0.5, edge=1.0)
    feats = build(df)
    model = EnsemblePredictor(cfg).fit(feats.iloc[1000:3500], forward_return(df, 12).iloc[1000:3500])
    offline = model.predict(feats.iloc[3500:3700])
    candles, _ = load_candles(ETH)
    s = EnsembleStrategy(model, "v1", SmaCrossover(10, 30))
    s.warmup(candles[3500 - s.warmup_candles:3500])
    cost = float(offline.loc[offline["prob_up"] >= 0.5, "exp_return"].median())  # half the entries pay it
    assert cost > 0
    s.round_trip_cost = cost
    entries = {"paid": 0, "refused": 0}
    for i, c in enumerate(candles[3500:3700]):
        sig = s.on_candle(c)
        assert sig is not None
        row = offline.iloc[i]
        assert sig.prob_up == pytest.approx(row["prob_up"], abs=1e-6)
        if row["prob_up"] >= 0.5:
            entries["paid" if row["exp_return"] > cost else "refused"] += 1
            assert sig.target == float(row["exp_return"] > cost), "flat: a new entry only when the move pays"
    assert entries["paid"] and entries["refused"], entries


def test_status_names_what_actually_trades(tmp_path: Path) -> None:
    """With no promoted model the ensemble's SMA fallback trades, and says so; a model trades by its version."""
    from backend.src.trading.strategies.ensemble import ModelWatcher  # noqa: PLC0415

    watcher = ModelWatcher(10, 30, tmp_path / "models")
    assert watcher.trading_as == "sma_crossover (ensemble fallback: no usable production model)"
    watcher.version = "ensemble_20260101_000000"
    assert watcher.trading_as == "ensemble ensemble_20260101_000000"
