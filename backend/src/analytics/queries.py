"""The history queries the rest of the project uses (API ``/history/...``, the dashboard, Telegram's
``/pnl``): bounded by a time range, paginated where rows are many. Same SQL on chDB and a server.

Days and weeks are the engines' own (candle time, UTC), like their daily PnL and the global stop:
a day's PnL is the next day's opening equity (journaled when the day opens) minus this day's, and
for the engine's current day its latest equity minus the opening.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any, Literal

from backend.src.analytics.store import Store, quote, rows

Period = Literal["day", "week"]
CRASH_TYPES = ("crashed", "hung", "failed", "recovered", "stalled")


def _symbols(symbol: str | None) -> str:
    return f"AND symbol = {quote(symbol)}" if symbol else ""


def ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def week_of(day: str) -> str:
    d = dt.date.fromisoformat(day)
    return (d - dt.timedelta(days=d.weekday())).isoformat()


def day_marks(store: Store, symbols: list[str] | None = None, start: dt.date | None = None,
              end: dt.date | None = None) -> dict[str, list[tuple[str, float]]]:
    """(day, opening equity) per symbol, oldest first."""
    where = [f"symbol IN ({', '.join(quote(s) for s in symbols)})"] if symbols else []
    where += [f"day >= {quote(start.isoformat())}"] if start else []
    where += [f"day <= {quote(end.isoformat())}"] if end else []
    sql = ("SELECT symbol, day, argMax(equity, seq) AS open_eq FROM day_marks "  # noqa: S608 - literals quoted
           f"{'WHERE ' + ' AND '.join(where) if where else ''} GROUP BY symbol, day ORDER BY symbol, day")
    out: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for r in rows(store, sql):
        out[r["symbol"]].append((r["day"], float(r["open_eq"])))
    return dict(out)


def latest_equity(store: Store, since_ms: int, symbol: str | None = None) -> dict[str, tuple[int, float]]:
    """Each symbol's last traded equity at or after ``since_ms`` (the range keeps the scan to the last days)."""
    sql = ("SELECT symbol, max(ts) AS last_ts, argMax(equity, ts) AS eq FROM candles "  # noqa: S608
           f"WHERE ts >= {int(since_ms)} {_symbols(symbol)} GROUP BY symbol")
    return {r["symbol"]: (int(r["last_ts"]), float(r["eq"])) for r in rows(store, sql)}


def pnl(store: Store, start: dt.date, end: dt.date, by: Period = "day",
        symbol: str | None = None) -> list[dict[str, Any]]:
    """PnL per symbol per day (or ISO week, Monday first) in [start, end], in the symbol's quote currency."""
    marks = day_marks(store, [symbol] if symbol else None, start, end + dt.timedelta(days=1))
    last_days = [days[-1][0] for days in marks.values() if days]
    latest = latest_equity(store, ms(dt.date.fromisoformat(min(last_days))), symbol) if last_days else {}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for sym, days in marks.items():
        for i, (day, open_eq) in enumerate(days):
            if day > end.isoformat():
                continue
            if i + 1 < len(days):
                close_eq = days[i + 1][1]
            elif sym in latest:
                close_eq = latest[sym][1]
            else:
                continue
            period = day if by == "day" else week_of(day)
            row = out.setdefault((sym, period), {"symbol": sym, "period": period, "pnl": 0.0, "open_equity": open_eq})
            row["pnl"] += close_eq - open_eq
            row["close_equity"] = close_eq
    return [{**v, "pnl": round(v["pnl"], 2)} for _, v in sorted(out.items())]


def equity(store: Store, symbol: str, start_ms: int, end_ms: int, points: int = 500) -> list[dict[str, Any]]:
    """The equity curve (one row a minute in the store), at most ``points`` rows (the last of each step)."""
    span = max(end_ms - start_ms, 1)
    step = max(60_000, span // points // 60_000 * 60_000)
    sql = (f"SELECT intDiv(ts, {step}) * {step} AS t, argMax(equity, ts) AS eq, argMax(position, ts) AS pos "  # noqa: S608
           f"FROM equity WHERE symbol = {quote(symbol)} AND ts >= {int(start_ms)} AND ts < {int(end_ms)} "
           "GROUP BY t ORDER BY t")
    return [{"ts": int(r["t"]), "equity": float(r["eq"]), "position": float(r["pos"])}
            for r in rows(store, sql)]


def fills(store: Store, symbol: str | None, start_ms: int, end_ms: int, limit: int, offset: int) -> dict[str, Any]:
    where = f"ts >= {int(start_ms)} AND ts < {int(end_ms)} {_symbols(symbol)}"
    total = rows(store, f"SELECT count() AS n FROM fills WHERE {where}")[0]["n"]  # noqa: S608
    got = rows(store, "SELECT symbol, seq, ts, at, order_id, side, qty, price, fee, liquidity, reason FROM fills "  # noqa: S608
                      f"WHERE {where} ORDER BY ts, symbol, seq LIMIT {int(limit)} OFFSET {int(offset)}")
    return {"total": int(total), "limit": limit, "offset": offset, "fills": got}


def crashes(store: Store, start_ms: int, end_ms: int, by: Period = "day") -> list[dict[str, Any]]:
    """Engine incidents (crashed, hung, failed, recovered, stalled) per symbol per day or week."""
    day = "toDate(toDateTime(intDiv(ms, 1000), 'UTC'))"
    period = day if by == "day" else f"toMonday({day})"
    types = ", ".join(quote(t) for t in CRASH_TYPES)
    sql = (f"SELECT symbol, toString({period}) AS period, type, count() AS n FROM events "  # noqa: S608
           f"WHERE ms >= {int(start_ms)} AND ms < {int(end_ms)} AND type IN ({types}) "
           "GROUP BY symbol, period, type ORDER BY period, symbol")
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows(store, sql):
        row = out.setdefault((r["period"], r["symbol"]), {"symbol": r["symbol"], "period": r["period"],
                                                          **dict.fromkeys(CRASH_TYPES, 0)})
        row[r["type"]] = int(r["n"])
    return list(out.values())


def calibration(store: Store, start_ms: int, end_ms: int, symbol: str | None = None, bins: int = 10,
                model: str | None = None) -> list[dict[str, Any]]:
    """Predicted P(up) against the realised rate of up moves (next close above this close), per bin."""
    where = f"ts >= {int(start_ms)} AND ts < {int(end_ms)} {_symbols(symbol)}"
    if model:
        where += f" AND model = {quote(model)}"
    sql = (f"SELECT least(toUInt32(floor(prob_up * {bins})), {bins - 1}) AS b, count() AS n, "  # noqa: S608
           "avg(prob_up) AS predicted, avg(next_close > close) AS realised "
           f"FROM predictions WHERE {where} GROUP BY b ORDER BY b")
    return [{"bin": [int(r["b"]) / bins, (int(r["b"]) + 1) / bins], "n": int(r["n"]),
             "predicted": round(float(r["predicted"]), 4), "realised": round(float(r["realised"]), 4)}
            for r in rows(store, sql)]


def perpetual(store: Store, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """Per symbol: funding received (+) or paid (-), how many payments, and the liquidations, in [start, end)."""
    window = f"ts >= {int(start_ms)} AND ts < {int(end_ms)}"
    got: dict[str, dict[str, Any]] = {}
    for r in rows(store, f"SELECT symbol, sum(amount) AS funding, count() AS payments FROM funding "  # noqa: S608
                         f"WHERE {window} GROUP BY symbol"):
        got[r["symbol"]] = {"symbol": r["symbol"], "funding": float(r["funding"]), "payments": int(r["payments"]),
                            "liquidations": 0}
    for r in rows(store, f"SELECT symbol, count() AS n FROM fills WHERE {window} "  # noqa: S608
                         "AND reason = 'liquidation' GROUP BY symbol"):
        got.setdefault(r["symbol"], {"symbol": r["symbol"], "funding": 0.0, "payments": 0, "liquidations": 0})
        got[r["symbol"]]["liquidations"] = int(r["n"])
    return [got[s] for s in sorted(got)]
