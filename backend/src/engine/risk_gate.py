"""The engine's side of risk: sizing, portfolio slots, the global stop, policy hot reload."""

from __future__ import annotations

import logging
import math

import redis
from pydantic import ValidationError

from backend.risk import global_stop
from backend.risk.limits import PortfolioLimits
from backend.risk.manager import RiskManager
from backend.risk.policy import RiskPolicy
from backend.src.core.keys import Keys
from backend.src.core.types import Candle, Signal

log = logging.getLogger(__name__)


class RiskGate:
    def __init__(self, r: redis.Redis, keys: Keys, symbol: str, policy: RiskPolicy, *, live: bool) -> None:
        self.r, self.keys, self.symbol, self.live = r, keys, symbol, live
        self.policy = policy
        self.risk = RiskManager(policy)
        self.limits = PortfolioLimits(r, keys)
        self.policy_version = ""
        self.halted_reason = ""
        self.holder = ""  # our lease token once running
        self.ewma_abs_ret = 0.0
        self.last_close = 0.0

    # ------------------------------------------------------------------ heartbeat side

    def beat(self, day: str) -> str:
        """Check (and maybe trigger) the global stop; reload a newer policy. Returns the flag."""
        flag, version = global_stop.check(self.r, self.keys, day=day, symbol=self.symbol,
                                          max_daily_loss_pct=self.policy.max_daily_loss_pct)
        if version and version != self.policy_version:
            self.reload_policy(version)
        return flag

    def reload_policy(self, version: str) -> None:
        self.policy_version = version
        try:
            raw = self.r.hget(self.keys.risk_policy, "json")
            policy = RiskPolicy.model_validate_json(str(raw or "{}"))
        except (redis.RedisError, ValidationError) as exc:
            log.error("risk policy version %s not applied, last good one stays: %s", version, exc,
                      extra={"symbol": self.symbol})
            return
        if policy != self.policy:
            self.policy, self.risk = policy, RiskManager(policy)
            log.info("risk policy version %s applied", version, extra={"symbol": self.symbol})

    # ------------------------------------------------------------------ order side

    def observe(self, candle: Candle) -> None:
        if self.last_close > 0 and candle.close > 0:
            r = abs(math.log(candle.close / self.last_close))
            self.ewma_abs_ret = r if not self.ewma_abs_ret else 0.9 * self.ewma_abs_ret + 0.1 * r
        self.last_close = candle.close

    def volatility(self, stop_loss_pct: float) -> float:
        """Expected adverse move as a fraction of price: the stop distance, else ~3 typical moves."""
        return stop_loss_pct / 100 if stop_loss_pct else max(3 * self.ewma_abs_ret, 1e-4)

    def target_usd(self, sig: Signal, equity: float, cap_usd: float, stop_loss_pct: float) -> float:
        if self.halted_reason or sig.target <= 0:
            return 0.0
        size = self.risk.calculate_position_size(
            self.symbol, equity, self.volatility(stop_loss_pct), self.policy.max_symbol_risk_pct / 100,
            prob_up=sig.prob_up, confidence=sig.confidence)
        return min(size, cap_usd) * min(1.0, sig.target)

    def allow_open(self, exposure_usd: float, equity: float) -> bool:
        """Reserve a portfolio slot before opening. Redis down: refused live, allowed on paper."""
        try:
            d = self.limits.reserve(
                self.symbol, self.holder, group=self.policy.group_of(self.symbol), exposure_usd=exposure_usd,
                max_exposure_usd=equity * self.policy.max_symbol_exposure_pct / 100,
                max_total=self.policy.max_concurrent_positions, max_group=self.policy.max_correlated_positions)
        except redis.RedisError:
            if self.live:
                log.warning("redis unreachable: no new live position", extra={"symbol": self.symbol})
                return False
            return True  # paper trading rides out a Redis outage (limits are re-checked on return)
        if not d.allowed:
            log.info("entry refused by portfolio limit %s (%d open)", d.reason, d.total,
                     extra={"symbol": self.symbol, "limit": d.reason})
        return d.allowed

    def flat(self) -> None:
        try:
            self.limits.release(self.symbol, self.holder)
        except redis.RedisError:
            pass  # the slot is freed by the next reservation once our lease lapses, or on restart

    def adopt(self, holder: str, position: float, exposure_usd: float, equity: float) -> bool:
        """At start: hold our slot if we carry a position (from the journal), release it if flat."""
        self.holder = holder
        if position:
            return self.allow_open(exposure_usd, equity)
        self.flat()
        return True
