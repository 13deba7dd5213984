"""Histogram layouts shared by their writers (supervisor, nightly retrain) and the API's
``/metrics``: Redis hash fields ``le:<bound>`` (non-cumulative), ``le:+Inf``, ``sum``."""

from __future__ import annotations

# Prometheus histogram buckets for crash detected -> running again (seconds)
RECOVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RETRAIN_BUCKETS = (60, 300, 600, 1200, 1800, 3600)  # nightly retrain durations (seconds)


def bucket_field(seconds: float, buckets: tuple[float, ...] = RECOVERY_BUCKETS) -> str:
    """Hash field of the (non-cumulative) bucket a value falls in: ``le:<bound>`` or ``le:+Inf``."""
    return next((f"le:{b}" for b in buckets if seconds <= b), "le:+Inf")
