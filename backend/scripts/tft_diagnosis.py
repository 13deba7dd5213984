"""Why the TFT used to collapse: ``python -m backend.scripts.tft_diagnosis --ohlcv-dir ../shared/data/ohlcv``.

On the development region only (the first 75 % of every 5m file; the backtest's test region is never
read), one TFT across the pairs is trained on the first 10 days and scored on the days after: the
AUC of its P(up) against the sign of the tradable 1 h forward return, per pair and on average, and
the spread of its raw probabilities — with the target centred per window (the library's default,
the old behaviour) and scaled but not centred (now), at 2 and 6 epochs.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from backend.src.core.settings import cli_path
from backend.src.models.ensemble_predictor import FEATURE_SETS
from backend.src.models.feature_pipeline import build, forward_return, load_ohlcv
from backend.src.models.tft import TFTModel

DEV_SHARE = 0.75
TRAIN_BARS = 10 * 288


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tft_diagnosis", description=__doc__.splitlines()[0])
    ap.add_argument("--ohlcv-dir", type=cli_path, required=True)
    ap.add_argument("--pattern", default="*-5m.csv")
    args = ap.parse_args(argv)
    frames = {p.stem: load_ohlcv(p) for p in sorted(args.ohlcv_dir.glob(args.pattern))}
    frames = {k: v.iloc[: int(len(v) * DEV_SHARE)] for k, v in frames.items()}
    feats = {k: build(v) for k, v in frames.items()}
    train = pd.concat([f.iloc[:TRAIN_BARS].assign(symbol=k) for k, f in feats.items()])
    for centred in (True, False):
        for epochs, samples in ((2, 20000), (6, 60000)):
            t0 = time.monotonic()
            model = TFTModel(list(FEATURE_SETS["price_history"]), epochs=epochs, max_train_samples=samples,
                             center_target=centred).fit(train, pd.Series(dtype=float))
            aucs, spreads = [], []
            for k, f in feats.items():
                p = model.predict_proba(f)[TRAIN_BARS:]
                y = forward_return(frames[k], 12).to_numpy()[TRAIN_BARS:]
                ok = ~np.isnan(p) & ~np.isnan(y)
                aucs.append(roc_auc_score(y[ok] > 0, p[ok]))
                spreads.append(float(np.std(p[ok])))
            print(f"target {'centred' if centred else 'not centred'}, {epochs} epochs, {samples} windows: "
                  f"validation AUC {np.mean(aucs):.3f} (per pair {', '.join(f'{a:.3f}' for a in aucs)}), "
                  f"P(up) sd {np.mean(spreads):.4f}, {time.monotonic() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
