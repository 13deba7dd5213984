"""The analytics benchmark runs end to end on a small store (its figures come from the full run in README)."""

from __future__ import annotations

import pytest

from backend.scripts import bench_analytics


def test_bench_analytics_small(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_analytics.main(["--fills", "2000", "--candles", "100000", "--repeat", "2", "--lag-seconds", "0"]) == 0
    out = capsys.readouterr().out
    assert "2,000 fills, 100,000 candles" in out and "calibration, 30 days" in out and "target:" in out
