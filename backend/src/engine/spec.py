"""What an engine process is given (built by the supervisor, pickled to the child) and how it logs."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from backend.risk.policy import RiskPolicy
from backend.src.core.config import SourceSpec, SymbolConfig
from backend.src.core.settings import Settings


class SymbolLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Binds the symbol to every line and keeps the call's own ``extra`` fields."""

    def process(self, msg: object, kwargs: MutableMapping[str, Any]) -> tuple[object, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


@dataclass(frozen=True)
class EngineSpec:
    """Everything an engine process needs, built by the manager and pickled to the child."""

    symbol: str
    settings: Settings
    config: SymbolConfig
    source: SourceSpec  # replay path already resolved to this symbol's file
    owner: str  # manager identity, used for the lease
    policy: RiskPolicy = field(default_factory=RiskPolicy)
    mode: Literal["trade", "liquidate"] = "trade"  # liquidate: close the position and exit (liquidate.py)
