"""``python -m backend.ml.run_fusion_test --symbol BTCUSDT --lookback 500``

Loads the production model (checksums verified), feeds the symbol's last ``lookback``
candles one by one through the engine's ensemble strategy (features → prediction, as an
engine does it live) and prints the last prob_up / confidence and the per-candle latency.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from backend.src.core.errors import EXIT_USAGE, UsageError
from backend.src.core.settings import cli_path, cli_settings
from backend.src.market.candles import load_candles
from backend.src.models.backends import Backends
from backend.src.models.feature_pipeline import find_file
from backend.src.models.registry import Registry
from backend.src.trading.strategies.baselines import SmaCrossover
from backend.src.trading.strategies.ensemble import EnsembleStrategy, production_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="run_fusion_test", description=__doc__.splitlines()[0])
    ap.add_argument("--symbol", required=True)
    ap.add_argument("--lookback", type=int, default=500)
    ap.add_argument("--timeframe", default=None, help="the candles' (default: what the model was trained on)")
    ap.add_argument("--data-dir", type=cli_path, default=None)
    ap.add_argument("--ohlcv-dir", type=cli_path, default=None, help="default <data dir>/ohlcv")
    args = ap.parse_args(argv)
    try:
        if args.lookback < 1:
            raise UsageError("--lookback: must be at least 1")
        settings = cli_settings(args.data_dir)
        t0 = time.perf_counter()
        loaded = production_model(settings.models_dir, Backends.of(settings))
        if loaded is None:
            raise UsageError(f"no production model in {settings.models_dir}: make one with `bash "
                             "backend/scripts/nightly_retrain.sh` (train, validate, promote), or train with "
                             "`python -m backend.ml.research.auto_tuner --symbol BTCUSDT ...` and promote it with "
                             "`python -m backend.ml.research.validate_model --model latest --promote`")
        load_s = time.perf_counter() - t0
        version, model = loaded
        timeframe = args.timeframe or str(Registry(settings.models_dir).metadata(version).get("timeframe", "5m"))
        candles, _ = load_candles(find_file(args.ohlcv_dir or settings.data_dir / "ohlcv", args.symbol, timeframe))
        strategy = EnsembleStrategy(model, version, SmaCrossover(10, 30))
        warm = strategy.warmup_candles
        if len(candles) < args.lookback + warm:
            raise UsageError(f"--lookback: {len(candles)} candles, need lookback + {warm} of warm-up")
        strategy.warmup(candles[-args.lookback - warm:-args.lookback])
        lat, signal = [], None
        for c in candles[-args.lookback:]:
            t = time.perf_counter()
            signal = strategy.on_candle(c)
            lat.append((time.perf_counter() - t) * 1000)
    except UsageError as exc:
        print(f"run_fusion_test: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    lat.sort()
    assert signal is not None  # noqa: S101 - warmed up above
    print(f"model {version} (loaded and verified in {load_s * 1000:.0f} ms)")
    print(f"{args.symbol} last candle: prob_up {signal.prob_up:.4f}  confidence {signal.confidence:.4f}  "
          f"target {signal.target:+.2f}")
    print(f"latency per candle (features + ensemble), n={len(lat)}: min {lat[0]:.2f} / median "
          f"{statistics.median(lat):.2f} / p95 {lat[int(0.95 * (len(lat) - 1))]:.2f} / max {lat[-1]:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
