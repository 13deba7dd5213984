"""What an engine process is given: built by the supervisor, pickled to the child."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from backend.risk.policy import RiskPolicy
from backend.src.core.config import SourceSpec, SymbolConfig
from backend.src.core.settings import Settings


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
