"""The public Strategy API, version ``API_VERSION`` (docs/strategies.md): everything a strategy plugin
imports from LeviBot. Names here keep their meaning within a version; a breaking change raises it."""

from __future__ import annotations

from backend.src.core.types import Candle, Signal
from backend.src.trading.strategies.base import API_VERSION, NoParams, PositionState, Strategy
from backend.src.trading.strategies.vector import VectorStrategy

__all__ = ["API_VERSION", "Candle", "NoParams", "PositionState", "Signal", "Strategy", "VectorStrategy"]
