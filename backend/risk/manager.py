"""Position sizing: fixed-fractional (volatility-normalised) and fractional Kelly.

Every size is clamped: never above ``max_position_usd``, never above
``max_symbol_exposure_pct`` (20 %) of equity, zero when the edge is negative or the
inputs make no sense, and a size below ``min_position_usd`` is skipped (0), not rounded up.
"""

from __future__ import annotations

import math

from backend.risk.policy import RiskPolicy


class RiskManager:
    def __init__(self, policy: RiskPolicy) -> None:
        self.policy = policy

    def calculate_position_size(
        self, symbol: str, equity: float, volatility: float, max_risk_pct: float = 0.02, *,
        prob_up: float | None = None, confidence: float = 1.0, payoff_ratio: float = 1.0,
    ) -> float:
        """Position size in quote currency (USD).

        ``volatility``: expected adverse move as a fraction of price (e.g. ATR / price, or
        the stop distance). Fixed-fractional risks ``max_risk_pct`` of equity over that move.
        Kelly: ``f = p - (1 - p) / b`` with ``p`` the model's ``prob_up`` shrunk towards 0.5
        by its ``confidence`` and ``b`` the payoff ratio, times ``kelly_fraction``.
        """
        sizing = self.policy.position_sizing
        if not (_finite_pos(equity) and math.isfinite(volatility) and math.isfinite(max_risk_pct)):
            return 0.0
        if sizing.method == "kelly":
            size = self._kelly(equity, prob_up, confidence, payoff_ratio)
        else:
            if volatility <= 0 or max_risk_pct <= 0:
                return 0.0
            size = equity * max_risk_pct / volatility
        return self.clamp(size, equity)

    def _kelly(self, equity: float, prob_up: float | None, confidence: float, payoff: float) -> float:
        if prob_up is None or not (0 <= prob_up <= 1) or not _finite_pos(payoff) or not math.isfinite(confidence):
            return 0.0
        p = 0.5 + (prob_up - 0.5) * min(1.0, max(0.0, confidence))
        f = p - (1 - p) / payoff
        return max(0.0, f) * self.policy.position_sizing.kelly_fraction * equity

    def clamp(self, size: float, equity: float) -> float:
        sizing = self.policy.position_sizing
        cap = min(sizing.max_position_usd, equity * self.policy.max_symbol_exposure_pct / 100)
        size = min(size, cap)
        if size <= 0 or size < sizing.min_position_usd:
            return 0.0
        return size


def _finite_pos(x: float) -> bool:
    return math.isfinite(x) and x > 0
