from __future__ import annotations

import random

from backend.src.supervisor.restart_policy import RestartPolicy


def test_first_restart_immediate_then_exponential_capped() -> None:
    p = RestartPolicy(max_restarts=5, base_s=0.5, cap_s=4.0, jitter=0.0)
    rng = random.Random(1)
    assert [p.delay(n, rng) for n in range(1, 8)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_jitter_spreads_delays_within_bounds() -> None:
    p = RestartPolicy(base_s=1.0, cap_s=30.0, jitter=0.2)
    rng = random.Random(3)
    delays = [p.delay(3, rng) for _ in range(200)]
    assert min(delays) >= 1.6 and max(delays) <= 2.4
    assert len({round(d, 3) for d in delays}) > 50, "no lockstep restarts"


def test_limit_and_stable_reset() -> None:
    p = RestartPolicy(max_restarts=5, stable_after_s=60)
    assert not p.exhausted(5) and p.exhausted(6)
    assert not p.stable(59.9) and p.stable(60)
