"""ML benchmark: ``python -m backend.scripts.bench_ml --ohlcv FILE [--repeats 3]``.

1. Training time of each model on one pair (the first 75 % of the file), as in the shipped
   ``ensemble.yaml``: LightGBM and the return quartiles on the multi-timeframe features, the
   TFT with the tuner's settings (1 epoch, 20k windows) at hidden size 32, the sentiment
   mapping; min/median/max over repeats.
2. Inference per symbol and candle as an engine runs it (5m + 15m/1h/4h features over the last
   1000 candles, or 1h + 4h/1d/1w over the last 2800, then the ensemble, its expected return and
   size): min/median/p95 over the final 25 %,
   for the model saved and loaded back as engines load it (the TFT through ONNX Runtime) and for
   the same model in memory with its TFT in torch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from backend.ml.research.backtest import DEFAULT_CONFIG
from backend.src.core.settings import cli_path
from backend.src.market.candles import load_candles
from backend.src.models.base import Model
from backend.src.models.ensemble_predictor import EnsembleConfig, EnsemblePredictor, ModelSpec
from backend.src.models.feature_pipeline import build, forward_return, infer_timeframe_ms, load_ohlcv
from backend.src.models.lgbm import LightGBMModel
from backend.src.models.quantiles import ReturnQuantiles
from backend.src.models.sentiment_model import SentimentModel
from backend.src.models.tft import TFTModel
from backend.src.trading.strategies.baselines import SmaCrossover
from backend.src.trading.strategies.ensemble import EnsembleStrategy


def q(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ohlcv", type=cli_path, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    df = load_ohlcv(args.ohlcv)
    tf_ms = infer_timeframe_ms(df)
    feats, y = build(df), forward_return(df, 12)
    cut = int(len(df) * 0.75)
    train_x, train_y = feats.iloc[:cut], y.iloc[:cut]
    shipped = EnsembleConfig.load(DEFAULT_CONFIG)
    lgbm_spec, ret_spec = shipped.models[0], shipped.returns
    assert ret_spec is not None  # noqa: S101 - the shipped config has a return model
    cfg = shipped.model_copy(update={"vol_target": 0.3, "kelly_cap": 0.25, "models": [lgbm_spec, ModelSpec(
        name="tft", weight=0.3, features="price_history", params={"hidden_size": 32, "epochs": 1}),
        ModelSpec(name="sentiment", weight=0.2, features=["news_score"])]})
    timings: dict[str, list[float]] = {"lgbm": [], "lgbm_quantiles": [], "tft": [], "sentiment": []}
    models: dict[str, Model] = {}
    for _ in range(args.repeats):
        for name, make in (("lgbm", lambda: LightGBMModel(lgbm_spec.feature_list(tf_ms), **lgbm_spec.params)),
                           ("lgbm_quantiles", lambda: ReturnQuantiles(ret_spec.feature_list(tf_ms),
                                                                      **ret_spec.params)),
                           ("tft", lambda: TFTModel(cfg.models[1].feature_list(), hidden_size=32, epochs=1)),
                           ("sentiment", lambda: SentimentModel(["news_score"]))):
            t0 = time.perf_counter()
            models[name] = make().fit(train_x, train_y)
            timings[name].append(time.perf_counter() - t0)
    for name, xs in timings.items():
        print(f"train {name} on {cut} candles: min {min(xs):.2f} / median {statistics.median(xs):.2f} / "
              f"max {max(xs):.2f} s (n={len(xs)})")
    in_memory = EnsemblePredictor(cfg, models)
    candles, _ = load_candles(args.ohlcv)
    with tempfile.TemporaryDirectory(prefix="levibot-bench-ml-") as tmp:
        in_memory.save(Path(tmp))
        loaded = EnsemblePredictor.load(Path(tmp))
        for label, ensemble in (("as engines load it, TFT through ONNX Runtime", loaded),
                                ("in memory, TFT in torch", in_memory)):
            strategy = EnsembleStrategy(ensemble, "bench", SmaCrossover(10, 30))
            strategy.warmup(candles[cut - strategy.warmup_candles:cut])
            lat = []
            for c in candles[cut:]:
                t0 = time.perf_counter()
                strategy.on_candle(c)
                lat.append((time.perf_counter() - t0) * 1000)
            print(f"inference per candle (features + lgbm + quartiles + tft + sentiment), {label}: min "
                  f"{min(lat):.2f} / median {statistics.median(lat):.2f} / p95 {q(lat, 0.95):.2f} / max "
                  f"{max(lat):.2f} ms (n={len(lat)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
