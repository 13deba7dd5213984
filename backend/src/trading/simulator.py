"""A candle file through the engine's trading code, without an engine: the backtester's core.

Each candle goes through ``TradingSession.on_candle`` exactly as in an engine replaying the same
file from a flat start with the same config (same strategy object, trader, sizer, rules, fees and
slippage), with an in-memory journal instead of the fsynced file, the paper venue and no portfolio around the
symbol (``OpenGate``: a backtest of one symbol has no other positions to share slots with).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backend.risk.policy import RiskPolicy
from backend.src.core.config import SymbolConfig
from backend.src.core.types import Candle
from backend.src.trading.journal import MemoryJournal
from backend.src.trading.session import TradingSession
from backend.src.trading.sizing import OpenGate, Sizer
from backend.src.trading.strategies.base import Strategy
from backend.src.venue.orders import Fill
from backend.src.venue.paper import PaperVenue

PROGRESS_EVERY = 2000
FILL_COLUMNS = ("candle_ts", "side", "qty", "price", "fee", "reason")
FUNDING_COLUMNS = ("candle_ts", "rate", "qty", "price", "amount")
TRADE_COLUMNS = ("entry_ts", "exit_ts", "side", "qty", "entry_price", "exit_price", "fees", "pnl", "return_pct")


@dataclass
class _Trip:
    entry_ts: int
    long: bool
    in_qty: float = 0.0
    in_cost: float = 0.0
    out_qty: float = 0.0
    out_value: float = 0.0
    fees: float = 0.0


def round_trips(fills: list[Fill]) -> list[dict[str, float | int | str]]:
    """Fills grouped into trades (flat → position → flat), as a trade list to compare with other
    backtesters': entry/exit candle, size, average prices, fees, net PnL (quote) and return."""
    out: list[dict[str, float | int | str]] = []
    pos, cur = 0.0, None
    for f in fills:
        signed = f.qty if f.side == "buy" else -f.qty
        if cur is None:
            cur = _Trip(f.candle_ts, signed > 0)
        if (signed > 0) == cur.long:
            cur.in_qty, cur.in_cost = cur.in_qty + f.qty, cur.in_cost + f.qty * f.price
        else:
            cur.out_qty, cur.out_value = cur.out_qty + f.qty, cur.out_value + f.qty * f.price
        cur.fees += f.fee
        pos += signed
        if abs(pos) < 1e-12:
            pnl = (1.0 if cur.long else -1.0) * (cur.out_value - cur.in_cost) - cur.fees
            out.append({"entry_ts": cur.entry_ts, "exit_ts": f.candle_ts, "side": "long" if cur.long else "short",
                        "qty": cur.in_qty, "entry_price": cur.in_cost / cur.in_qty,
                        "exit_price": cur.out_value / cur.out_qty, "fees": cur.fees, "pnl": pnl,
                        "return_pct": 100 * pnl / cur.in_cost})
            pos, cur = 0.0, None
    return out


@dataclass
class SimResult:
    fills: list[Fill] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)  # after each candle, marked at its close
    position: list[float] = field(default_factory=list)
    journal: MemoryJournal = field(default_factory=MemoryJournal)

    def write_fills(self, path: Path) -> None:
        """The fills as journaled (``reason``: the order's, ``stop_loss``, ``liquidation``, ...), and beside
        them ``funding.csv``: every funding payment (+ received)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(FILL_COLUMNS)
            for e in self.journal.of_type("fill")[-len(self.fills):] if self.fills else []:
                w.writerow([e["candle_ts"], e["side"], repr(e["qty"]), repr(e["price"]), repr(e["fee"]),
                            e.get("reason", "")])
        with path.with_name("funding.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(FUNDING_COLUMNS)
            for e in self.journal.of_type("funding"):
                w.writerow([e["candle_ts"], repr(e["rate"]), repr(e["qty"]), repr(e["price"]), repr(e["amount"])])

    def write_trades(self, path: Path) -> None:
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, TRADE_COLUMNS)
            w.writeheader()
            w.writerows(round_trips(self.fills))


def simulate(symbol: str, cfg: SymbolConfig, strategy: Strategy, candles: list[Candle], policy: RiskPolicy, *,
             source_id: str = "backtest", warmup: list[Candle] | None = None,
             progress: Callable[[int], None] | None = None, journal: MemoryJournal | None = None,
             sizer: Sizer | None = None) -> SimResult:
    """Every candle, from a flat start (warm-up included: an engine replaying a file from its first
    candle has no history either), unless ``warmup`` gives it the history an engine warmed on and
    ``journal`` the journal an engine restarted from. ``progress(n)`` is told every
    ``PROGRESS_EVERY`` candles how many are done (a strategy warmed outside is handed ``warmup`` instead, so
that a vectorized one computes the run with its history); ``fills`` are the ones made here; ``sizer``: the policy's
    (default) or research's ``FullExposure``."""
    out = SimResult(journal=journal or MemoryJournal())
    strategy.precompute([*(warmup or []), *candles])  # a vectorized strategy's whole run at once
    session = TradingSession(symbol, cfg, out.journal, strategy, PaperVenue(cfg), source_id=source_id,
                             sizer=sizer or Sizer(symbol, policy), gate=OpenGate())
    if warmup:
        session.warmup(warmup)
    book = session.book
    for n, c in enumerate(candles):
        if progress is not None and n % PROGRESS_EVERY == 0:
            progress(n)
        out.fills += session.on_candle(c, gen=1, now=c.ts / 1000)
        out.ts.append(c.ts)
        out.equity.append(book.equity)
        out.position.append(book.qty)
    return out
