"""Restart policy: exponential backoff with jitter, a consecutive-failure limit, staggering.

Unlike supervisord (which forgets a crash once the process outlived ``startsecs``), every
crash counts; the count only resets after ``stable_after_s`` of healthy running.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from backend.src.core.settings import SupervisorSettings


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    base_s: float = 0.5
    cap_s: float = 30.0
    jitter: float = 0.2
    stable_after_s: float = 60.0

    @classmethod
    def of(cls, s: SupervisorSettings) -> RestartPolicy:
        return cls(s.max_restarts, s.backoff_base_s, s.backoff_cap_s, s.backoff_jitter, s.stable_after_s)

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait before restart number ``failures`` (1-based).

        The first restart is immediate (a single crash should cost milliseconds, not
        seconds); later ones double from ``base_s`` up to ``cap_s``, with +/- jitter so
        engines that died together do not come back in lockstep.
        """
        if failures <= 1:
            return 0.0
        raw = min(self.cap_s, self.base_s * 2 ** (failures - 2))
        return float(max(0.0, raw * (1 + rng.uniform(-self.jitter, self.jitter))))

    def exhausted(self, failures: int) -> bool:
        """True once ``max_restarts`` restarts in a row have failed."""
        return failures > self.max_restarts

    def stable(self, running_for_s: float) -> bool:
        return running_for_s >= self.stable_after_s
