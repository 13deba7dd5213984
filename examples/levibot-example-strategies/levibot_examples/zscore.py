"""A vectorized strategy: long in proportion to how far the close is below its rolling mean.

``populate`` sees the last ``lookback`` candles and writes ``z`` (the close's z-score against the
rolling mean and deviation) and ``target``: 0 above the mean, rising to a whole position at
``-full_at`` deviations, in quarter steps (so a position is not resized on every candle).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from backend.src.trading.api import VectorStrategy


class ZScoreParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback: int = Field(default=72, ge=3, le=5000)  # candles in the rolling mean and deviation
    full_at: float = Field(default=2.0, gt=0, le=10)  # z-score (below the mean) of a whole position


class ZScoreReversion(VectorStrategy):
    name = "zscore_reversion"
    Params = ZScoreParams

    def __init__(self, **params: object) -> None:
        super().__init__(**params)  # validates into self.params (a ZScoreParams)
        self.warmup_candles = self.params.lookback  # the window populate sees

    def populate(self, frame: pd.DataFrame) -> pd.DataFrame:
        roll = frame["close"].rolling(self.params.lookback)
        frame["z"] = (frame["close"] - roll.mean()) / roll.std()  # an exposed indicator
        frame["target"] = np.round(np.clip(-frame["z"] / self.params.full_at, 0.0, 1.0) * 4) / 4
        return frame
