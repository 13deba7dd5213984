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
