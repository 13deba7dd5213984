"""The engine's side of risk: portfolio slots, the global stop, policy hot reload (sizing itself is
the trading floor's ``Sizer``, shared with the backtester)."""

from __future__ import annotations

import logging

import redis
from pydantic import ValidationError

from backend.risk import global_stop
from backend.risk.limits import PortfolioLimits
from backend.risk.policy import RiskPolicy
from backend.src.core.keys import Keys
from backend.src.trading.sizing import Sizer

log = logging.getLogger(__name__)


class RiskGate:
    def __init__(self, r: redis.Redis, keys: Keys, symbol: str, policy: RiskPolicy, *, fails_closed: bool) -> None:
        self.r, self.keys, self.symbol = r, keys, symbol
        self.fails_closed = fails_closed  # the venue's say: blind to the portfolio, refuse new exposure
        self.policy = policy
        self.sizer = Sizer(symbol, policy)
        self.limits = PortfolioLimits(r, keys)
        self.policy_version = ""
        self.halted_reason = ""
        self.holder = ""  # our lease token once running

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
            self.policy = policy
            self.sizer.use(policy)
            log.info("risk policy version %s applied", version, extra={"symbol": self.symbol})

    # ------------------------------------------------------------------ order side

    def allow_open(self, exposure: float, equity: float) -> bool:
        """Reserve a portfolio slot before opening (``exposure`` signed: a short is negative). Redis down:
        refused where the venue fails closed (live), allowed where it rides the outage out (paper)."""
        p = self.policy
        try:
            d = self.limits.reserve(
                self.symbol, self.holder, group=p.group_of(self.symbol), exposure_usd=exposure,
                max_exposure_usd=equity * p.max_symbol_exposure_pct / 100, max_total=p.max_concurrent_positions,
                max_group=p.max_correlated_positions, max_gross_usd=p.max_gross_exposure_usd,
                max_net_usd=p.max_net_exposure_usd)
        except redis.RedisError:
            if self.fails_closed:
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

    def adopt(self, holder: str, position: float, exposure: float, equity: float) -> bool:
        """At start: hold our slot if we carry a position (from the journal), release it if flat."""
        self.holder = holder
        if position:
            return self.allow_open(exposure, equity)
        self.flat()
        return True
