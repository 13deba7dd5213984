"""The risk policy (``backend/risk/policy.yaml``): schema, validation, loading."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from backend.src.core.errors import UsageError

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "policy.yaml"


class PositionSizing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["fixed_fractional", "kelly"] = "fixed_fractional"
    kelly_fraction: float = Field(default=0.25, gt=0, le=1)
    min_position_usd: float = Field(default=10.0, ge=0)
    max_position_usd: float = Field(default=5000.0, gt=0)

    @model_validator(mode="after")
    def _min_below_max(self) -> PositionSizing:
        if self.min_position_usd > self.max_position_usd:
            raise ValueError("min_position_usd must not exceed max_position_usd")
        return self


class RiskPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_daily_loss_pct: float = Field(default=3.0, gt=0, le=100)
    max_symbol_risk_pct: float = Field(default=2.0, gt=0, le=100)
    max_symbol_exposure_pct: float = Field(default=20.0, gt=0, le=100)
    max_concurrent_positions: int = Field(default=15, ge=1, le=10_000)
    max_correlated_positions: int = Field(default=5, ge=1, le=10_000)
    # Portfolio exposure across symbols, USD (0: off): gross = sum of position sizes, long and short;
    # net = longs minus shorts (an entry that brings the net back towards zero is always admitted).
    max_gross_exposure_usd: float = Field(default=0.0, ge=0, le=1e12)
    max_net_exposure_usd: float = Field(default=0.0, ge=0, le=1e12)
    rebalance_frequency: Literal["daily", "weekly", "monthly"] = "weekly"
    correlation_groups: dict[str, list[str]] = Field(default_factory=dict)
    position_sizing: PositionSizing = PositionSizing()

    @model_validator(mode="after")
    def _one_group_per_symbol(self) -> RiskPolicy:
        seen: dict[str, str] = {}
        for group, symbols in self.correlation_groups.items():
            for sym in symbols:
                if sym in seen:
                    raise ValueError(f"{sym} is in two correlation groups ({seen[sym]}, {group})")
                seen[sym] = group
        return self

    def group_of(self, symbol: str) -> str:
        return next((g for g, syms in self.correlation_groups.items() if symbol in syms), "")


def parse_policy(text: str, name: str = "policy") -> RiskPolicy:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UsageError(f"{name}: not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from exc
    if not isinstance(raw, dict):
        raise UsageError(f"{name}: top level must be a mapping")
    try:
        return RiskPolicy.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "policy"
        raise UsageError(f"{name}: {loc}: {err['msg']}") from exc


def load_policy(path: Path | None = None) -> RiskPolicy:
    path = path or DEFAULT_POLICY_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"LEVIBOT_RISK_POLICY: cannot read {path}: {exc.strerror}") from exc
    return parse_policy(text, str(path))
