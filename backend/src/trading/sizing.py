"""Position sizing shared by engines and the backtester: the risk manager's size for a signal,
against a volatility the sizer tracks from closes (an EWMA of absolute log returns).

The portfolio side (slots, correlation groups, the global stop) needs Redis and lives in the
engine's ``RiskGate``; the trader sees it through ``Gate``. A backtest of one symbol has no
portfolio: ``OpenGate`` admits every entry."""

from __future__ import annotations

import math
from typing import Protocol

from backend.risk.manager import RiskManager
from backend.risk.policy import RiskPolicy
from backend.src.core.types import Candle, Signal


class Sizer:
    def __init__(self, symbol: str, policy: RiskPolicy) -> None:
        self.symbol = symbol
        self.use(policy)
        self.ewma_abs_ret = 0.0
        self.last_close = 0.0
        self.atr = 0.0  # Wilder's average true range over 14 candles (0 until the first two candles)

    def use(self, policy: RiskPolicy) -> None:
        self.policy, self.risk = policy, RiskManager(policy)
        sizing = policy.position_sizing.model_copy(update={"min_position_usd": 0.0, "max_position_usd": math.inf})
        self.unpriced = RiskManager(policy.model_copy(update={"position_sizing": sizing}))

    def observe(self, candle: Candle) -> None:
        if self.last_close > 0 and candle.close > 0:
            r = abs(math.log(candle.close / self.last_close))
            self.ewma_abs_ret = r if not self.ewma_abs_ret else 0.9 * self.ewma_abs_ret + 0.1 * r
            last = self.last_close  # true range, without builtins: this runs on every candle of every backtest
            tr = (candle.high if candle.high > last else last) - (candle.low if candle.low < last else last)
            self.atr = self.atr + (tr - self.atr) / 14 if self.atr else tr
        self.last_close = candle.close

    def volatility(self, stop_loss_pct: float) -> float:
        """Expected adverse move as a fraction of price: the stop distance, else ~3 typical moves."""
        return stop_loss_pct / 100 if stop_loss_pct else max(3 * self.ewma_abs_ret, 1e-4)

    def target(self, sig: Signal, equity: float, cap: float, stop_loss_pct: float,
               usd_per_quote: float | None = 1.0) -> float:
        """Target notional (quote currency) for ``sig``: the policy's size, capped, scaled by the target's
        size (a short's notional is positive too: the trader gives it its side).

        The policy's amounts are USD: equity is converted at ``usd_per_quote``; when that rate is
        unknown (a BTC-quoted pair sized by ``size_quote``) its USD floor and cap are not applied."""
        if not sig.target:
            return 0.0
        rate = usd_per_quote or 1.0
        risk = self.risk if usd_per_quote else self.unpriced
        win = sig.prob_up if sig.target > 0 else 1 - sig.prob_up  # Kelly: the chance of the side taken
        size = risk.calculate_position_size(
            self.symbol, equity * rate, self.volatility(stop_loss_pct), self.policy.max_symbol_risk_pct / 100,
            prob_up=win, confidence=sig.confidence) / rate
        return min(size, cap) * min(1.0, abs(sig.target))


class FullExposure(Sizer):
    """A target of 1 is the whole equity, whatever the policy says: how research reports headline figures
    (like buy-and-hold's raw curve, so a drawdown cannot look small because positions were small)."""

    def target(self, sig: Signal, equity: float, cap: float, stop_loss_pct: float,
               usd_per_quote: float | None = 1.0) -> float:
        return equity * min(1.0, abs(sig.target))


class Gate(Protocol):
    """The portfolio's say over one symbol's entries."""

    halted_reason: str

    def allow_open(self, exposure: float, equity: float) -> bool: ...

    def flat(self) -> None: ...


class OpenGate:
    """No portfolio around (a backtest of one symbol): every entry is admitted."""

    halted_reason = ""

    def allow_open(self, exposure: float, equity: float) -> bool:
        return True

    def flat(self) -> None:
        return None
