"""Progress of long work: a bar on a terminal, one line per step in a pipe or a log.

A walk-forward, the tuner, the nightly cycle and a download all run for minutes; a user watching a
terminal gets tqdm's bar, one reading a pipe (CI, ``| tee``, cron mail) a line per step with its
position, the time taken so far and the time left at the pace so far.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """``update(n, note)`` after each step; a bar on a terminal, else one line per step on ``out``."""

    def __init__(self, total: int, desc: str, *, unit: str = "step", out: IO[str] | None = None,
                 clock: Callable[[], float] = time.monotonic, bar: bool | None = None) -> None:
        self.total, self.desc, self.unit, self.clock = total, desc, unit, clock
        self.out = out if out is not None else sys.stderr
        self.done, self.t0 = 0, clock()
        use_bar = self.out.isatty() if bar is None else bar
        self.bar = None
        if use_bar:
            from tqdm import tqdm  # noqa: PLC0415 - only where a terminal shows it

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.out)

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            if note:
                self.bar.set_postfix_str(note, refresh=False)
            return
        spent = self.clock() - self.t0
        left = spent / self.done * (self.total - self.done) if self.done else 0.0
        tail = f" — {note}" if note else ""
        print(f"{self.desc}: {self.done}/{self.total} {self.unit}s, {fmt_seconds(spent)} spent, "
              f"~{fmt_seconds(left)} left{tail}", file=self.out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

