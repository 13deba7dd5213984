"""Health verdicts computed from an engine's state hash (shared by the manager and the API)."""

from __future__ import annotations

STALL_PERIODS = 3  # no candle for this many candle periods while heartbeating = stalled
STALL_FLOOR_S = 10.0  # ...and never sooner: a loaded machine delays fast candles by seconds


def heartbeat_age(hb_value: str | None, now: float) -> float | None:
    """Seconds since the heartbeat ``<pid>:<gen>:<ts>`` was written, None if there is none."""
    if not hb_value:
        return None
    try:
        return max(0.0, now - float(hb_value.rsplit(":", 1)[1]))
    except (IndexError, ValueError):
        return None


def is_stalled(state: dict[str, str], hb_age: float | None, now: float, heartbeat_timeout_s: float) -> bool:
    """Alive (fresh heartbeat, running) but no candle processed for max(3 candle periods, 10 s)."""
    if state.get("status") != "running" or hb_age is None or hb_age > heartbeat_timeout_s:
        return False
    if state.get("exhausted") == "1":
        return False  # a finished replay is idle on purpose
    try:
        period = float(state.get("candle_period_s") or 0)
        last = float(state.get("last_candle_at") or 0)
    except ValueError:
        return False
    return period > 0 and last > 0 and now - last > stall_threshold_s(period)


def stall_threshold_s(candle_period_s: float) -> float:
    """Seconds without a candle before a heartbeating engine counts as stalled."""
    return max(STALL_PERIODS * candle_period_s, STALL_FLOOR_S)


def format_uptime(seconds: float) -> str:
    """``2h15m`` style, as the seed's status endpoint shows it."""
    s = int(max(0, seconds))
    d, s = divmod(s, 86_400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h}h{m}m"
    if h:
        return f"{h}h{m}m"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"
