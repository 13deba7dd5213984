"""The ensemble's decision layer, the only one anywhere (engines, backtests, tuner, validation gate):
a model's P(up) and expected return over its horizon in, a target exposure out.

- **enter** when P(up) ≥ ``threshold`` and the expected return pays the costs: it must exceed
  ``edge`` × the round trip (taker fee and slippage, both ways) — with ``edge: 0`` (or a model
  without a return forecast) the probability alone decides;
- **hold** while P(up) stays ≥ ``exit_threshold`` (a no-trade band up to ``threshold``), and for at
  least ``min_hold`` candles whatever it says (hysteresis: noise does not flip the position);
- **flat** below ``exit_threshold`` after the minimum hold, or at once when the model has no opinion (NaN).

The state is the journal's position (held or not, candles held), not the rule's: after a restart
the rule resumes in the state the journal shows. Long-only: spot cannot be sold short.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backend.src.trading.strategies.base import PositionState


@dataclass(frozen=True)
class DecisionParams:
    threshold: float = 0.6  # P(up) to enter at (the model config's ``threshold``)
    exit_threshold: float = 0.5  # P(up) below which a held position exits (the config's ``exit_threshold``)
    min_hold: int = 0
    edge: float = 0.0

    def __post_init__(self) -> None:
        if not 0.5 <= self.exit_threshold <= self.threshold < 1:
            raise ValueError(f"decision: need 0.5 <= exit_threshold ({self.exit_threshold}) <= threshold "
                             f"({self.threshold}) < 1")
        if self.min_hold < 0 or self.edge < 0:
            raise ValueError("decision: min_hold and edge must be >= 0")


class DecisionRule:
    def __init__(self, params: DecisionParams) -> None:
        self.params = params

    def __call__(self, prob: float, exp_return: float, position: PositionState, round_trip_cost: float) -> float:
        p = self.params
        if math.isnan(prob):
            return 0.0
        if position.qty > 0:
            if position.bars_held < p.min_hold or prob >= p.exit_threshold:
                return 1.0
            return 0.0
        if prob < p.threshold:
            return 0.0
        if p.edge > 0 and math.isfinite(exp_return) and exp_return <= p.edge * round_trip_cost:
            return 0.0
        return 1.0
