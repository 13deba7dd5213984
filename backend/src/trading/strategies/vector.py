"""The vectorized form of a strategy: ``populate(frame) -> frame`` with a ``target`` column.

The frame is the last ``warmup_candles`` candles (index ``ts``, ms; columns open, high, low, close,
volume); ``populate`` adds its indicator columns and ``target``: the exposure wanted after that
candle, in [-1, 1] (negative: short, perpetuals only; NaN: no opinion yet). Every numeric column it
adds is an exposed indicator.

An engine calls ``populate`` on its window after every candle and trades the last row's target. The
backtester calls it once on the whole run (``precompute``) and reads each candle's row: some 270 times
faster a candle (``python -m backend.scripts.bench_plugins``), and equal to the engine's way only when
no row reads a later one (no ``shift(-1)``, no centred window, no whole-column normalisation) and
``warmup_candles`` rows are enough for every value. ``python -m backend.src.trading.check`` proves both
on a candle file, and engines and the backtester run it on a plugin before trading it.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import numpy as np
import pandas as pd

from backend.src.core.types import Candle, Signal
from backend.src.models.tail_features import Window
from backend.src.trading.strategies.base import Strategy

OHLCV = ("open", "high", "low", "close", "volume")


def frame_of(candles: list[Candle]) -> pd.DataFrame:
    """Candles as the frame ``populate`` receives."""
    w = Window(max(1, len(candles)))
    w.extend(candles)
    return w.frame()


class VectorStrategy(Strategy):
    """Subclass, set ``warmup_candles`` (the window ``populate`` sees) and write ``populate``; the validated
    parameters are ``self.params`` (an instance of the class's ``Params``)."""

    name = "vector"
    warmup_candles = 100

    def __init__(self, **params: Any) -> None:
        self.params = self.Params.model_validate(params)
        self._window: Window | None = None
        self._rows: dict[int, int] = {}
        self._values: np.ndarray = np.empty((0, 0))
        self._columns: list[str] = []
        self._last: dict[str, float] = {}

    @abstractmethod
    def populate(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame with a ``target`` column (and any indicator columns)."""

    def _populated(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = self.populate(frame)
        if not isinstance(out, pd.DataFrame) or "target" not in out.columns or len(out) != len(frame):
            raise TypeError(f"{type(self).__name__}.populate must return the frame it was given (same rows) "
                            "with a target column")
        return out.select_dtypes("number")

    def precompute(self, candles: list[Candle]) -> None:
        self._rows = {}
        try:
            out = self._populated(frame_of(candles)) if candles else pd.DataFrame()
        except Exception:  # noqa: BLE001 - decided candle by candle then, where an error meets on_failed
            return
        self._columns = [str(c) for c in out.columns]
        self._values = out.to_numpy(dtype=float)
        self._rows = {c.ts: i for i, c in enumerate(candles)}

    def warmup(self, candles: list[Candle]) -> None:
        """The history into the window; ``populate`` runs once, on its last candle."""
        if candles:
            self._win().extend(candles[:-1])
            self.on_candle(candles[-1])

    def _win(self) -> Window:
        if self._window is None:
            self._window = Window(max(1, int(self.warmup_candles)))
        return self._window

    def on_candle(self, candle: Candle) -> Signal | None:
        self._win().append(candle)
        i = self._rows.get(candle.ts)
        if i is not None:
            row = dict(zip(self._columns, self._values[i].tolist(), strict=True))
        else:
            out = self._populated(self._win().frame())
            row = {str(k): float(v) for k, v in out.iloc[-1].items()}
        self._last = {k: v for k, v in row.items() if k not in OHLCV}
        target = self._last.get("target", math.nan)
        if math.isnan(target):
            return None
        target = max(-1.0, min(1.0, target))
        return Signal(target, self._last.get("prob_up", 0.5), self._last.get("confidence", 0.0),
                      f"{self.name} target {target:g}")

    def indicators(self) -> dict[str, float]:
        return dict(self._last)
