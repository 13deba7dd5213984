"""The baselines both ways: SMA crossover and momentum with ``allow_short``; older fingerprints unchanged."""

from __future__ import annotations

from backend.src.core.types import Candle
from backend.src.trading.strategies.base import fingerprint
from backend.src.trading.strategies.baselines import Momentum, SmaCrossover


def run(strategy: SmaCrossover | Momentum, closes: list[float]) -> list[float | None]:
    out = []
    for i, c in enumerate(closes):
        sig = strategy.on_candle(Candle(i * 60_000, c, c, c, c, 1.0))
        out.append(sig.target if sig else None)
    return out


def test_short_only_when_allowed() -> None:
    falling, rising = [10.0, 9.0, 8.0, 7.0, 6.0], [6.0, 7.0, 8.0, 9.0, 10.0]
    assert run(SmaCrossover(2, 4), falling)[-1] == 0.0
    assert run(SmaCrossover(2, 4, allow_short=True), falling)[-1] == -1.0
    assert run(SmaCrossover(2, 4, allow_short=True), rising)[-1] == 1.0
    assert run(Momentum(3, 0.05), falling)[-1] == 0.0
    assert run(Momentum(3, 0.05, allow_short=True), falling)[-1] == -1.0
    assert run(Momentum(3, 0.5, allow_short=True), falling)[-1] == 0.0, "a fall inside the threshold: flat"


def test_a_long_only_fingerprint_is_what_it_was() -> None:
    assert SmaCrossover(10, 30).fingerprint == fingerprint("sma_crossover", {"fast": 10, "slow": 30})
    assert SmaCrossover(10, 30, allow_short=True).fingerprint != SmaCrossover(10, 30).fingerprint


def test_ts_momentum_follows_the_trend_sized_to_the_volatility() -> None:
    """30 hourly candles of trend, 30 of volatility: the side is the trend's, the size 0.3 / the annualised
    volatility in whole quarter steps, never above 1; a falling trend is flat on spot and short with shorts."""
    from backend.src.trading.strategies.baselines import TsMomentum

    def run(strategy: TsMomentum, closes: list[float]) -> list[float]:
        out = []
        for i, c in enumerate(closes):
            sig = strategy.on_candle(Candle(i * 3_600_000, c, c, c, c, 1.0))
            out.append(sig.target if sig is not None else float("nan"))
        return out

    up = [100 * 1.001 ** i * (1.002 if i % 2 else 0.998) for i in range(40)]  # ~0.2 % hourly swings
    got = run(TsMomentum(lookback=30, vol_window=30, vol_target=0.3), up)
    assert all(t != t for t in got[:30]) and got[30] == got[-1]
    per_year = 0.004 * 8760 ** 0.5  # the swings' standard deviation, annualised (~0.37)
    assert got[-1] == 0.75 and 0.3 / per_year < 1.0
    down = list(reversed(up))
    assert run(TsMomentum(lookback=30, vol_window=30), down)[-1] == 0.0
    assert run(TsMomentum(lookback=30, vol_window=30, allow_short=True), down)[-1] == -0.75
