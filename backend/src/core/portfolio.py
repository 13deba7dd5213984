"""The portfolio in one currency (USD) over time, from the engines' (time, equity) samples."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any


def portfolio_curve(series: dict[str, list[tuple[float, float]]], rates: dict[str, float],
                    points: int = 600) -> dict[str, Any]:
    """Total equity in USD over wall time: each symbol's (at, equity) carried forward between its
    samples (and back to the start from its first one: an engine started later adds no jump that
    would look like profit), summed on a grid of at most ``points`` steps; daily PnL per UTC day."""
    priced = {s: v for s, v in series.items() if v and s in rates}
    if not priced:
        return {"currency": "USD", "t": [], "equity": [], "daily": []}
    t0 = min(v[0][0] for v in priced.values())
    t1 = max(v[-1][0] for v in priced.values())
    step = max((t1 - t0) / max(points - 1, 1), 1e-3)
    grid = [t0 + i * step for i in range(int((t1 - t0) / step) + 1)] or [t0]
    total = [0.0] * len(grid)
    for sym, samples in priced.items():
        j, cur = 0, samples[0][1]
        for i, t in enumerate(grid):
            while j < len(samples) and samples[j][0] <= t + 1e-9:
                cur = samples[j][1]
                j += 1
            total[i] += cur * rates[sym]
    days: dict[str, list[float]] = defaultdict(list)
    for t, v in zip(grid, total, strict=True):
        days[dt.datetime.fromtimestamp(t, dt.UTC).date().isoformat()].append(v)
    daily, prev = [], None
    for day, vals in days.items():
        daily.append({"day": day, "pnl": round(vals[-1] - (prev if prev is not None else vals[0]), 2)})
        prev = vals[-1]
    return {"currency": "USD", "t": [round(t, 3) for t in grid], "equity": [round(v, 2) for v in total],
            "daily": daily}
