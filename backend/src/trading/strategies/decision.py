"""The ensemble's decision layer, the only one anywhere (engines, backtests, tuner, validation gate):
a model's P(up) and expected return over its horizon in, a target exposure out.

- **enter** when P(up) ≥ ``threshold`` and the expected return pays the costs: it must exceed
  ``edge`` × the round trip (taker fee and slippage, both ways) — with ``edge: 0`` (or a model
  without a return forecast) the probability alone decides;
- **hold** while P(up) stays ≥ ``exit_threshold`` (a no-trade band up to ``threshold``), and for at
  least ``min_hold`` candles whatever it says (hysteresis: noise does not flip the position);
- **flat** below ``exit_threshold`` after the minimum hold, or at once when the model has no opinion (NaN).

Shorts (``shorts``: a perpetual symbol): the mirror image — enter when P(up) ≤ 1 − ``threshold`` and the
expected fall pays the costs, hold while P(up) stays ≤ 1 − ``exit_threshold``; a held side that exits
turns over when the other side's entry holds on the same candle. ``carry`` is the funding expected
over the horizon as a fraction of notional (positive: longs pay it, shorts receive it): with ``edge``
set, a long must expect ``edge`` × round trip plus the carry, a short that minus the carry.

The state is the journal's position (held or not, candles held), not the rule's: after a restart
the rule resumes in the state the journal shows.
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

    def __call__(self, prob: float, exp_return: float, position: PositionState, round_trip_cost: float,
                 *, shorts: bool = False, carry: float = 0.0) -> float:
        p = self.params
        if math.isnan(prob):
            return 0.0
        held = position.qty
        if held:
            stay = prob >= p.exit_threshold if held > 0 else prob <= 1 - p.exit_threshold
            if position.bars_held < p.min_hold or stay:
                return 1.0 if held > 0 else -1.0
        if prob >= p.threshold and held <= 0 and (not p.edge or self._pays(exp_return, round_trip_cost, carry)):
            return 1.0
        if shorts and prob <= 1 - p.threshold and held >= 0 and (
                not p.edge or self._pays(-exp_return, round_trip_cost, -carry)):
            return -1.0
        return 0.0

    def _pays(self, move: float, round_trip_cost: float, carry: float) -> bool:
        """The expected move on the side taken pays ``edge`` round trips plus the funding carried."""
        return not (math.isfinite(move) and move <= self.params.edge * round_trip_cost + carry)
