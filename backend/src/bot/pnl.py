"""``/pnl [today|7d|30d]``: PnL per symbol over a window of trading days, and the portfolio's equity chart.

The base of a window is the equity each engine journals when its trading day opens (``type: day``,
``trading/session.py``), read from the analytics store (the journals themselves when it is not
running): PnL = equity now − the opening equity of the first day in the window (the engine's first
day when it is younger). Days are the engine's own (candle time), so a replay's
window is its replayed days. The chart joins those day openings to the recent candles the engines
push to Redis (``Keys.history``), summed in USD (``core/portfolio.py``), drawn by matplotlib.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from backend.src.core.portfolio import portfolio_curve

WINDOWS = {"today": 1, "7d": 7, "30d": 30}
DAY_TAG = b'"type":"day"'


def day_marks(journal: Path) -> list[tuple[str, float]]:
    """(day, opening equity) from an engine's journal, oldest first; one per day (the last written)."""
    marks: dict[str, float] = {}
    try:
        with journal.open("rb") as fh:
            for line in fh:
                if DAY_TAG in line:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue  # a torn last line: the engine cuts it off at its next start
                    marks[str(e["day"])] = float(e["equity"])
    except FileNotFoundError:
        return []
    return sorted(marks.items())


def window_start(marks: list[tuple[str, float]], days: int) -> tuple[str, float] | None:
    """The first day opening within the last ``days`` trading days (counted back from the engine's latest)."""
    if not marks:
        return None
    first = (dt.date.fromisoformat(marks[-1][0]) - dt.timedelta(days=days - 1)).isoformat()
    return next(m for m in marks if m[0] >= first)


def rows(engines: list[dict[str, Any]], marks: dict[str, list[tuple[str, float]]], days: int) -> list[dict[str, Any]]:
    out = []
    for e in engines:
        start = window_start(marks.get(e["symbol"], []), days)
        pnl = e["equity"] - start[1] if start and e["equity"] else 0.0
        rate = e["usd_per_quote"]
        out.append({"symbol": e["symbol"], "pnl": round(pnl, 2), "quote": e["quote"],
                    "usd": None if rate is None else round(pnl * rate, 2), "since": start[0] if start else "—"})
    return out


def series(marks: list[tuple[str, float]], recent: list[tuple[float, float]],
           since_day: str) -> list[tuple[float, float]]:
    """(candle time s, equity): day openings from ``since_day`` and the recent candles after them."""
    t0 = dt.datetime.fromisoformat(since_day).replace(tzinfo=dt.UTC).timestamp()
    pts = [(dt.datetime.fromisoformat(d).replace(tzinfo=dt.UTC).timestamp(), eq) for d, eq in marks if d >= since_day]
    pts += [(t, eq) for t, eq in recent if t >= t0]
    return sorted(pts)


def chart_png(per_symbol: dict[str, list[tuple[float, float]]], rates: dict[str, float], title: str) -> bytes | None:
    """The portfolio's equity in USD as a PNG (None when there is nothing to draw)."""
    curve = portfolio_curve(per_symbol, rates, points=400)
    if len(curve["t"]) < 2:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - only when a chart is asked for
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(8, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    when = np.array([round(t * 1000) for t in curve["t"]], dtype="datetime64[ms]")
    ax.plot(when, curve["equity"], color="#2962ff", linewidth=1.4)
    ax.fill_between(when, curve["equity"], min(curve["equity"]), color="#2962ff", alpha=0.08)
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("equity, USD")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
