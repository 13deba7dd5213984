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

Size (``vol_target``, ``kelly_cap``; both 0: every position is the whole target, ±1): the model's terms
decide how much. ``vol_target`` (annualised) scales the position by the target over the current
volatility (volatility targeting: a calm market gets a larger share, a violent one a smaller); ``kelly_cap``
caps it at that fraction of the Kelly bet μ / σ² of the forecast (μ the expected return over the horizon,
σ its spread from the return model's quartiles), which follows the calibrated P(up): a weak edge gets a
small bet. The size is rounded down to ``size_step`` (nothing below one step is traded) and a held
position is re-sized only when the size moves by a whole step (no fee-paying churn).

The state is the journal's position (held or not, candles held), not the rule's: after a restart
the rule resumes in the state the journal shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backend.src.trading.strategies.base import PositionState

NAN = math.nan


@dataclass(frozen=True)
class Forecast:
    """What the ensemble says about one candle, in the decision layer's terms."""

    prob: float  # calibrated P(up) over the horizon (NaN: no opinion)
    exp_return: float = NAN  # expected return over the horizon
    sigma: float = NAN  # its spread (standard deviation) over the horizon
    vol: float = NAN  # the market's current volatility, annualised


@dataclass(frozen=True)
class DecisionParams:
    threshold: float = 0.6  # P(up) to enter at (the model config's ``threshold``)
    exit_threshold: float = 0.5  # P(up) below which a held position exits (the config's ``exit_threshold``)
    min_hold: int = 0
    edge: float = 0.0
    vol_target: float = 0.0  # annualised volatility a position is sized to (0: off)
    kelly_cap: float = 0.0  # the position never exceeds this fraction of the Kelly bet (0: off)
    size_step: float = 0.25

    def __post_init__(self) -> None:
        if not 0.5 <= self.exit_threshold <= self.threshold < 1:
            raise ValueError(f"decision: need 0.5 <= exit_threshold ({self.exit_threshold}) <= threshold "
                             f"({self.threshold}) < 1")
        if self.min_hold < 0 or self.edge < 0:
            raise ValueError("decision: min_hold and edge must be >= 0")
        if self.vol_target < 0 or self.kelly_cap < 0 or not 0 < self.size_step <= 1:
            raise ValueError("decision: vol_target and kelly_cap must be >= 0, size_step in (0, 1]")

    @property
    def sized(self) -> bool:
        return bool(self.vol_target or self.kelly_cap)


class DecisionRule:
    def __init__(self, params: DecisionParams) -> None:
        self.params = params

    def __call__(self, forecast: Forecast | float, exp_return: float, position: PositionState,
                 round_trip_cost: float, *, shorts: bool = False, carry: float = 0.0) -> float:
        """The target exposure: the side (+1 long, −1 short, 0 flat) times the size."""
        f = forecast if isinstance(forecast, Forecast) else Forecast(forecast, exp_return)
        side = self.side(f, position, round_trip_cost, shorts, carry)
        if not side or not self.params.sized:
            return float(side)
        size = self.size(f)
        held = abs(position.target) if position.qty and position.target * side > 0 else 0.0
        if held and (abs(size - held) < self.params.size_step or math.isnan(size)):
            return side * held  # within a step of what is held: no resize
        return side * (0.0 if math.isnan(size) else size)

    def side(self, f: Forecast, position: PositionState, round_trip_cost: float, shorts: bool, carry: float) -> int:
        p, prob = self.params, f.prob
        if math.isnan(prob):
            return 0
        held = position.qty
        if held:
            stay = prob >= p.exit_threshold if held > 0 else prob <= 1 - p.exit_threshold
            if position.bars_held < p.min_hold or stay:
                return 1 if held > 0 else -1
        if prob >= p.threshold and held <= 0 and (not p.edge or self._pays(f.exp_return, round_trip_cost, carry)):
            return 1
        if shorts and prob <= 1 - p.threshold and held >= 0 and (
                not p.edge or self._pays(-f.exp_return, round_trip_cost, -carry)):
            return -1
        return 0

    def size(self, f: Forecast) -> float:
        """The position's size in [0, 1] in steps (NaN: the inputs it needs are missing)."""
        p = self.params
        size = 1.0
        if p.vol_target:
            if not (math.isfinite(f.vol) and f.vol > 0):
                return NAN
            size = min(size, p.vol_target / f.vol)
        if p.kelly_cap and math.isfinite(f.exp_return) and math.isfinite(f.sigma) and f.sigma > 0:
            size = min(size, p.kelly_cap * abs(f.exp_return) / f.sigma ** 2)
        return math.floor(size / p.size_step + 1e-9) * p.size_step

    def _pays(self, move: float, round_trip_cost: float, carry: float) -> bool:
        """The expected move on the side taken pays ``edge`` round trips plus the funding carried."""
        return not (math.isfinite(move) and move <= self.params.edge * round_trip_cost + carry)
