"""The one interface between deciding and carrying out.

A ``Trader`` decides what to do (orders, cancels, protective exits); a venue carries it out and
reports fills back through the ``Step`` it is handed, so the journal holds every fill before the
position changes. Two venues exist: ``PaperVenue`` (the simulated exchange the backtester and paper
engines share) and ``LiveVenue`` (an exchange through ccxt, with its protective stop and its
reconciliation). Nothing outside this package asks which one it is talking to; what differs is
declared here (``fails_closed``) or done here.

Positions are signed base quantities throughout (a short is a negative position): the perpetual
venues add margin, funding and liquidation behind this same interface.
"""

from __future__ import annotations

from typing import Protocol

from backend.src.core.config import SymbolConfig
from backend.src.core.types import Candle
from backend.src.market.exchange_rules import MarketRules, MarketTerms
from backend.src.venue.orders import Fill, Order, Step


class Venue(Protocol):
    name: str  # "paper" | "live:<exchange id>": for people (the engine's start line), never for branching
    fails_closed: bool  # blind to the portfolio (Redis down): refuse new exposure (real money) or ride it out

    def configure(self, cfg: SymbolConfig, rules: MarketRules) -> None:
        """The symbol's config and the rules in force (at start and on every hot reload)."""

    def terms(self) -> MarketTerms | None:
        """The exchange market's rules and fees, where the venue has an exchange behind it."""

    def mark_price(self, timeframe: str) -> float | None:
        """The freshest price the venue can tell (the last candle's close), or None."""

    def connect(self, orders: list[Order], position: float, price: float, step: Step, *, funded_ms: int = 0) -> None:
        """Before the first order: reconcile the journal's open orders and ``position`` with the venue
        (``funded_ms``: the exchange time of the last funding payment the journal holds)."""

    def settle(self, candle: Candle, position: float, step: Step) -> list[Fill]:
        """Perpetuals, before the candle's own work: the funding the venue charges or pays on ``position`` held
        into ``candle`` (``step.fund``), and what it did to the position by itself (live: the exchange's stop,
        a liquidation), as fills."""

    def match(self, orders: list[Order], candle: Candle, step: Step) -> list[Fill]:
        """What happened to resting orders (and the venue's own protective orders) during ``candle``."""

    def submit(self, order: Order, step: Step, *, at: float | None, liquidity: str) -> list[Fill]:
        """Carry out a journaled order. ``at``: a reference price to exit at now (protective exits, a
        flatten); None: a decision at the close, which rests (paper) or goes out at once (live)."""

    def liquidate(self, order: Order, price: float, step: Step) -> list[Fill]:
        """The position's isolated margin is exhausted at ``price``: close it there with the liquidation fee
        (paper), or book what the exchange's own liquidation did (live)."""

    def cancel(self, order: Order, step: Step) -> None:
        """Withdraw ``order`` from the venue (the trader journals the cancel)."""

    def protect(self, covered: float, avg_price: float, tag: str, step: Step) -> None:
        """Keep a protective stop on the venue for ``covered`` (signed) base units (nothing when 0)."""
