"""The feature benchmark runs end to end and prints its three figures."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from backend.src.core.settings import REPO_ROOT


@pytest.mark.slow
def test_bench_features_prints_figures() -> None:
    out = subprocess.run([sys.executable, "-m", "backend.scripts.bench_features", "--passes", "2", "--calls", "50",
                          "--jobs", "5", "--workers", "1"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    for name in ("lexicon throughput", "cache hit analyze()", "rq enqueue -> result"):
        assert re.search(re.escape(name) + r".*min [\d.]+ / median [\d.]+ / p95 [\d.]+", out), out
