"""The validation gate against the baselines: a candidate must beat the best of them on its window by the margin,
with a deflated Sharpe that counts every configuration tried."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.ml.research.validate_model import baselines, beats_baselines
from backend.risk.policy import load_policy
from backend.src.core.settings import Settings


def trending(n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0008, 0.006, n)))  # a steady hourly uptrend
    return pd.DataFrame({"open": np.concatenate([[100.0], close[:-1]]), "high": close * 1.002,
                         "low": close * 0.998, "close": close, "volume": 1.0},
                        index=pd.Index(1_672_531_200_000 + np.arange(n) * 3_600_000, name="ts"))


def test_the_best_baseline_sets_the_bar() -> None:
    base = baselines({"TESTUSDT": trending()}, 1000, load_policy())
    assert set(base) == {"buy_and_hold", "sma_crossover", "ts_momentum", "flat"}
    assert base["buy_and_hold"]["sharpe"] > 3 and base["flat"]["sharpe"] == 0, "a steady rise: holding is hard to beat"
    settings = Settings(retrain_baseline_margin=0.1, retrain_min_deflated_sharpe=0.5)
    bh = base["buy_and_hold"]["sharpe"]
    best = max(b["sharpe"] for b in base.values())
    good = {"sharpe": best + 0.2, "deflated_sharpe_prob": 0.9, "max_drawdown": 0.05, "total_return": 0.1}
    assert beats_baselines(settings, good, base) is None
    why = beats_baselines(settings, {**good, "sharpe": best + 0.05}, base)
    assert why is not None and "does not beat the best baseline" in why and f"{best:.2f}" in why
    lucky = beats_baselines(settings, {**good, "deflated_sharpe_prob": 0.3}, base)
    assert lucky is not None and "deflated sharpe 0.30" in lucky
    assert bh <= best
