"""Progress of long work: one line per step in a pipe (position, time spent, time left), a bar on a terminal."""

from __future__ import annotations

import io

from backend.src.core.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_pipe_gets_one_line_per_step_with_the_time_left() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(4, "val folds", unit="fold", out=out, clock=clock)
    for note in ("2022-01", "2022-02"):
        clock.t += 30
        p.update(note=note)
    clock.t += 90
    p.update(2)
    lines = out.getvalue().splitlines()
    assert lines == ["val folds: 1/4 folds, 30s spent, ~1m30s left — 2022-01",
                     "val folds: 2/4 folds, 1m00s spent, ~1m00s left — 2022-02",
                     "val folds: 4/4 folds, 2m30s spent, ~0s left"]


def test_a_terminal_gets_a_bar() -> None:
    bar_out = io.StringIO()
    p = Progress(3, "download", unit="candle", out=bar_out, bar=True)
    p.update(3)
    p.close()
    assert "3/3" in bar_out.getvalue() and "candles, " not in bar_out.getvalue()
