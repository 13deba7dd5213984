"""Promote a model that never saw the held-out windows: ``python -m backend.scripts.heldout_model
--ohlcv-dir DIR [--pattern "*-5m.csv"] [--holdout 0.25] [--config backend/ml/ensemble.yaml] [--tft]``.

Trains the ensemble once, pooled over every file, on each file's bars before its final
``--holdout`` share (the label horizon purged), registers it and promotes it in
``<LEVIBOT_DATA_DIR>/models``. Backtesting a model-gated strategy on the held-out windows
(``python -m backend.ml.research.backtest --strategy ... --holdout 0.25``) with that data dir is then an
honest out-of-sample figure. Use a scratch data dir: promoting replaces the production model.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd

from backend.ml.research.backtest import DEFAULT_CONFIG
from backend.src.core.errors import EXIT_USAGE, UsageError
from backend.src.core.settings import Settings, cli_path
from backend.src.models.ensemble_predictor import EnsembleConfig, EnsemblePredictor
from backend.src.models.feature_pipeline import build, forward_return, load_ohlcv
from backend.src.models.registry import Registry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="heldout_model", description=__doc__.splitlines()[0])
    ap.add_argument("--ohlcv-dir", type=cli_path, required=True)
    ap.add_argument("--pattern", default="*-5m.csv")
    ap.add_argument("--holdout", type=float, default=0.25)
    ap.add_argument("--config", type=cli_path, default=DEFAULT_CONFIG)
    ap.add_argument("--tft", action="store_true", help="keep the TFT (trains for a minute or two)")
    args = ap.parse_args(argv)
    try:
        if not 0 < args.holdout < 1:
            raise UsageError("--holdout: must be between 0 and 1")
        files = sorted(args.ohlcv_dir.glob(args.pattern)) if args.ohlcv_dir.is_dir() else []
        if not files:
            raise UsageError(f"--ohlcv-dir: no files matching {args.pattern} in {args.ohlcv_dir}")
        config = EnsembleConfig.load(args.config)
        if not args.tft:
            config = config.without("tft")
        horizon = config.horizon
        xs, ys, until = [], [], {}
        for f in files:
            df = load_ohlcv(f)
            end = int(len(df) * (1 - args.holdout)) - horizon - 1  # the last labels would peek into the window
            xs.append(build(df).iloc[:end].assign(symbol=f.stem))
            ys.append(forward_return(df, horizon).iloc[:end])
            until[f.stem] = int(df.index[end - 1])
        x, y = pd.concat(xs), pd.concat(ys)
        order = np.argsort(x.index.to_numpy(), kind="stable")
        model = EnsemblePredictor(config).fit(x.iloc[order], y.iloc[order])
        reg = Registry(Settings().models_dir)
        version = reg.save(model.save, {"trained_until_ms": until, "holdout": args.holdout,
                                        "models": [m.name for m in config.models]})
        reg.promote(version, reason="held-out evaluation")
    except UsageError as exc:
        print(f"heldout_model: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({"promoted": version, "trained_until_ms": until}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
