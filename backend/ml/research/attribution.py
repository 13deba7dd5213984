"""Why an engine's PnL differs from the backtester's over the same candles, cause by cause.

Both sides start from the same journal state, so the gap is what their fills and funding did from
there, marked at the last candle's close ``M``: a fill adds ``s·q·(M − p) − fee`` (``s`` = +1 buy, −1
sell). Fills are paired in candle order — same side on the same candle, or within ``TIMING_WINDOW``
candles (a late fill) — and each pair's difference splits exactly into
- **size**: ``s·(q_e − q_b)·(M − p_b)`` (why: exchange-step rounding, or a cap / minimum the engine met),
- **price** (same candle: slippage against the model's) or **timing** (a later candle): ``s·q_e·(p_b − p_e)``,
- **fees**: ``f_b − f_e``;
an unpaired fill is a **decision** difference (its whole effect; a backtest fill the engine refused with a
journaled reject is **size**: a minimum notional or a risk cap), and **funding** is the difference of the
payments. The causes sum to the gap exactly. A decision difference is explained when it falls within a
restart's warm-up, just after a missing candle, or under a config or model other than the current one;
what is not is **unexplained** — the drift the running engines are watched for.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.src.core.types import Candle
from backend.src.market.candle_log import Session
from backend.src.venue.orders import Fill

TIMING_WINDOW = 3  # candles: a fill this much later on the same side is a late fill, not another decision
CAUSES = ("decision", "timing", "price", "fees", "size", "funding")
UNEXPLAINED = "unexplained"


def side(f: Fill) -> float:
    return 1.0 if f.side == "buy" else -1.0


def pnl(f: Fill, mark: float) -> float:
    return side(f) * f.qty * (mark - f.price) - f.fee


@dataclass
class Context:
    """What explains a decision difference: the sessions, the candles, the engine's journal."""

    sessions: Sequence[Session]
    candles: Sequence[Candle]  # what the engine traded (its record: a missing candle is a gap in it)
    warmup: int  # the strategy's warm-up, candles
    strategy: str  # the current strategy's fingerprint and model (what the backtester ran)
    model: str
    journal: Sequence[dict[str, Any]]  # the engine's entries over the span
    step_size: float = 0.0

    def __post_init__(self) -> None:
        ts = [c.ts for c in self.candles]
        steps = sorted(b - a for a, b in itertools.pairwise(ts))
        self.step = steps[len(steps) // 2] if steps else 60_000
        self.gaps = [b for a, b in itertools.pairwise(ts) if b - a > 1.5 * self.step]  # candles after a hole
        self.stamps = {str(e["id"]): (str(e.get("strategy", "")), str(e.get("model", "")))
                       for e in self.journal if e["type"] == "order"}
        self.rejects = {int(e.get("candle_ts", 0)): str(e.get("reason", "")) for e in self.journal
                        if e["type"] == "reject"}

    def gap_before(self, ts: int) -> bool:
        """A candle missing from the engine's record within the warm-up before ``ts`` (its indicators saw
        one candle fewer until it left their window)."""
        i = bisect.bisect_left(self.gaps, ts - max(3, self.warmup) * self.step)
        return i < len(self.gaps) and self.gaps[i] <= ts

    def why(self, ts: int, order_id: str = "") -> str:
        """Why a decision on candle ``ts`` can differ (``UNEXPLAINED`` when nothing explains it)."""
        if self.gap_before(ts):
            return "a missing or late candle within the strategy's warm-up before it"
        for s in self.sessions[1:]:
            if s.why == "start" and s.traded and s.traded[0].ts <= ts < s.traded[0].ts + self.warmup * self.step:
                return "the strategy's warm-up after a restart"
        if any(s.why == "config" and s.traded and s.traded[0].ts > ts for s in self.sessions):
            return "a config change mid-session (decided under the older config)"
        stamp = self.stamps.get(order_id)
        if stamp is not None and (stamp[0] and stamp[0] != self.strategy or stamp[1] != self.model):
            return f"a config or model change (decided by strategy {stamp[0]} model {stamp[1] or '-'})"
        return UNEXPLAINED


def pairs(engine: Sequence[Fill], backtest: Sequence[Fill], step: int) -> list[tuple[Fill | None, Fill | None]]:
    out: list[tuple[Fill | None, Fill | None]] = []
    n_e, n_b = Counter((f.candle_ts, f.side) for f in engine), Counter((f.candle_ts, f.side) for f in backtest)
    i = j = 0
    while i < len(engine) or j < len(backtest):
        e = engine[i] if i < len(engine) else None
        b = backtest[j] if j < len(backtest) else None
        if e is not None and b is not None and e.side == b.side and abs(e.candle_ts - b.candle_ts) <= \
                TIMING_WINDOW * step:
            # a turn is two fills on one candle: pair each with the one of nearest size, the other is unpaired
            if _closer(backtest, j, e, n_b, n_e):
                out.append((None, b))
                j += 1
            elif _closer(engine, i, b, n_e, n_b):
                out.append((e, None))
                i += 1
            else:
                out.append((e, b))
                i, j = i + 1, j + 1
        elif e is not None and (b is None or e.candle_ts <= b.candle_ts):
            out.append((e, None))
            i += 1
        else:
            out.append((None, b))
            j += 1
    return out


def _closer(fills: Sequence[Fill], k: int, other: Fill, mine: Counter[tuple[int, str]],
            theirs: Counter[tuple[int, str]]) -> bool:
    """The next fill after ``fills[k]``, on the same candle and side, matches ``other``'s size better, and
    that candle has more such fills here than on the other side (one side turned, the other only closed)."""
    if k + 1 >= len(fills):
        return False
    a, b = fills[k], fills[k + 1]
    key = (a.candle_ts, a.side)
    return (b.candle_ts, b.side) == key and mine[key] > theirs[key] and abs(b.qty - other.qty) < abs(a.qty - other.qty)


def _row(ts: int, cause: str, why: str, amount: float) -> dict[str, Any]:
    return {"candle_ts": ts, "cause": cause, "why": why, "amount": amount}


def attribute(engine: Sequence[Fill], backtest: Sequence[Fill], mark: float, funding_engine: float,
              funding_backtest: float, ctx: Context) -> dict[str, Any]:
    """The gap and its causes: in total, per cause (with why), per fill; amounts in the quote currency."""
    rows: list[dict[str, Any]] = []
    for e, b in pairs(engine, backtest, ctx.step):
        if e is not None and b is not None:
            s = side(e)
            if abs(e.qty - b.qty) > 1e-12 * max(e.qty, b.qty):
                why = "rounding to the exchange's step" if ctx.step_size and abs(e.qty - b.qty) <= \
                    ctx.step_size * (1 + 1e-9) else ctx.rejects.get(e.candle_ts) or "a cap or sizing difference"
                rows.append(_row(e.candle_ts, "size", why, s * (e.qty - b.qty) * (mark - b.price)))
            if abs(e.price - b.price) > 1e-12 * b.price:
                cause = "price" if e.candle_ts == b.candle_ts else "timing"
                why = (f"{s * (e.price / b.price - 1) * 1e4:+.2f} bps against the model's fill" if cause == "price"
                       else f"filled {(e.candle_ts - b.candle_ts) // ctx.step:+d} candle(s) from the backtest"
                       + ("; a missing or late candle before it" if ctx.gap_before(e.candle_ts) else ""))
                rows.append(_row(e.candle_ts, cause, why, s * e.qty * (b.price - e.price)))
            if abs(e.fee - b.fee) > 1e-12:
                rows.append(_row(e.candle_ts, "fees", f"{e.fee:.6g} paid, the model's {b.fee:.6g}", b.fee - e.fee))
        elif e is not None:
            rows.append(_row(e.candle_ts, "decision", f"engine only ({e.side}): {ctx.why(e.candle_ts, e.order_id)}",
                             pnl(e, mark)))
        elif b is not None:
            refused = ctx.rejects.get(b.candle_ts)
            if refused:
                rows.append(_row(b.candle_ts, "size", f"the engine refused it: {refused}", -pnl(b, mark)))
            else:
                rows.append(_row(b.candle_ts, "decision", f"backtest only ({b.side}): {ctx.why(b.candle_ts)}",
                                 -pnl(b, mark)))
    if abs(funding_engine - funding_backtest) > 1e-12:
        rows.append(_row(ctx.candles[-1].ts if ctx.candles else 0, "funding", "payments differ",
                         funding_engine - funding_backtest))
    e_pnl = sum(pnl(f, mark) for f in engine) + funding_engine
    b_pnl = sum(pnl(f, mark) for f in backtest) + funding_backtest
    gap = e_pnl - b_pnl
    totals: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        key = (r["cause"], "unexplained" if r["why"].endswith(UNEXPLAINED) else "")
        t = totals.setdefault(key, [0.0, 0.0])
        t[0] += r["amount"]
        t[1] += 1
    causes = [{"cause": c, "unexplained": bool(u), "amount": a, "fills": int(n),
               "share": a / gap if abs(gap) > 1e-9 else None}
              for (c, u), (a, n) in sorted(totals.items(), key=lambda kv: -abs(kv[1][0]))]
    unexplained = sum(r["amount"] for r in rows if r["why"].endswith(UNEXPLAINED))
    return {"engine_pnl": e_pnl, "backtest_pnl": b_pnl, "gap": gap, "mark": mark, "causes": causes,
            "unexplained": unexplained, "explained": gap - unexplained, "rows": rows[:500]}


def summary(out: dict[str, Any], limit: int = 8) -> list[str]:
    """A parity result in lines of text (the CLI and the Telegram bot)."""
    a = out["attribution"]
    lines = [f"{out['symbol']}: latest session {out['fills_engine']} engine / {out['fills_backtest']} backtest fills, "
             f"{out['differences']} differ; strategy {'same' if out['same_strategy'] else 'DIFFERENT'}",
             f"over {a['sessions']} session(s) ({a['restarts']} restart(s), {a['config_changes']} config change(s), "
             f"{a['candles']} candles{', ' + str(a['missing']) + ' missing from its record' if a['missing'] else ''}):",
             f"engine PnL {a['engine_pnl']:+.2f}, backtest {a['backtest_pnl']:+.2f}, gap {a['gap']:+.2f} "
             f"(explained {a['explained']:+.2f}, unexplained {a['unexplained']:+.2f})"]
    for c in a["causes"][:limit]:
        share = f"{c['share']:.0%}" if c["share"] is not None else "-"
        label = c["cause"] + (" (unexplained)" if c["unexplained"] else "")
        lines.append(f"  {label:<24} {c['amount']:+12.2f}  {share:>6} of the gap  {c['fills']} fill(s)")
    if not a["causes"]:
        lines.append("  no difference")
    return lines
