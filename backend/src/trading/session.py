"""One symbol's trading, candle by candle — the code path engines and the backtester share.

On each closed candle: the first candle of a UTC day writes the day's opening equity (the daily
PnL base); the trader fills what earlier closes decided (at this candle's open) and the stops the
candle hit; the position is marked at the close; the sizer sees the close; the strategy, told the
journal's position as it stands at the close, gives its signal; the trader turns it into orders.
An engine wraps this with its lease fence, heartbeats and logging; the backtester feeds a file
through it with an in-memory journal. Same inputs, same fills.

A strategy that raises (a plugin's bug, a model that cannot run) does not stop the symbol: the error
is logged once per streak (and counted in ``failures``), and the position is handled by the config's
``on_failed`` policy — ``flatten`` closes it (a target of 0), ``hold`` keeps it with no new decision —
until a candle decides again. Engines keep heartbeating, honouring stops and the global stop meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from backend.src.core.config import SymbolConfig
from backend.src.core.types import Candle, Signal
from backend.src.market.perpetual import FUNDING_INTERVAL_MS, FundingRates, funding_rates
from backend.src.trading.journal import Journal
from backend.src.trading.sizing import Gate, Sizer
from backend.src.trading.strategies.base import PositionState, Strategy
from backend.src.trading.trader import Trader, no_fence
from backend.src.venue.base import Venue
from backend.src.venue.orders import Fill

log = logging.getLogger(__name__)


class TradingSession:
    def __init__(self, symbol: str, cfg: SymbolConfig, journal: Journal, strategy: Strategy, venue: Venue, *,
                 source_id: str, sizer: Sizer, gate: Gate) -> None:
        self.symbol, self.journal, self.strategy, self.source_id = symbol, journal, strategy, source_id
        self.sizer = sizer
        self.trader = Trader(symbol, cfg, journal, venue, source_id=source_id, sizer=sizer, gate=gate)
        self.book = self.trader.book
        marks = journal.of_type("day")
        self.day = str(marks[-1]["day"]) if marks else ""
        self.prev_ts: int | None = None
        self.signal: Signal | None = None
        self.round_trip = 2 * (cfg.fee_bps + cfg.slippage_bps) / 10_000
        self.funding: FundingRates | None = funding_rates(cfg) if cfg.perpetual else None
        self.shorts = cfg.perpetual  # a spot symbol is long-only
        self.on_failed = cfg.on_failed
        self.failures = 0  # candles on which the strategy raised
        self.failing = ""  # the current streak's error ("" once a candle decides again)
        self.use_strategy(strategy, [])

    def warmup(self, history: list[Candle]) -> None:
        self._warm(self.strategy, history)
        if history:
            self.prev_ts = history[-1].ts

    def _warm(self, strategy: Strategy, history: list[Candle]) -> None:
        try:
            strategy.warmup(history)
        except Exception as exc:  # noqa: BLE001 - a strategy's bug is the symbol's incident, not a crash
            self._failed(exc, "warm-up")

    def _failed(self, exc: Exception, where: str) -> None:
        self.failures += 1
        text = f"{type(exc).__name__}: {exc}"[:500]
        if not self.failing:  # once per streak, with the traceback
            log.error("strategy %s raised on %s (%s); on_failed: %s until it decides again",
                      self.strategy.trading_as, where, text, self.on_failed, exc_info=exc,
                      extra={"strategy_error": text, "on_failed": self.on_failed, "alert": True})
        self.failing = text

    def _decide(self, candle: Candle) -> Signal | None:
        try:
            sig = self.strategy.on_candle(candle)
        except Exception as exc:  # noqa: BLE001 - see the module's docstring
            self._failed(exc, f"candle {candle.ts}")
            held = self.strategy.position.target
            return Signal(0.0 if self.on_failed == "flatten" else held, 0.5, 0.0,
                          f"strategy error: on_failed {self.on_failed}")
        if self.failing:
            log.info("strategy %s decides again after %s", self.strategy.trading_as, self.failing)
            self.failing = ""
        return sig

    def use_strategy(self, strategy: Strategy, history: list[Candle]) -> None:
        self.strategy = strategy
        self.failing = ""
        self.trader.exit_pcts = (strategy.stop_loss_pct, strategy.take_profit_pct)
        strategy.round_trip_cost = self.round_trip
        strategy.shorts = self.shorts
        if history:
            self._warm(strategy, history)

    def on_candle(self, candle: Candle, *, gen: int, now: float,
                  fence: Callable[[], None] = no_fence) -> list[Fill]:
        self.roll_day(candle, gen)
        step = self.trader.step(candle.ts, gen, now, fence)
        fills = self.trader.begin_candle(candle, step)
        self.book.mark(candle.close)
        self.sizer.observe(candle)
        self.strategy.position = self.position(candle)
        if self.funding is not None and self.prev_ts is not None:  # what holding is expected to cost per candle
            self.strategy.funding_per_bar = self.funding.near(candle.ts) * (candle.ts - self.prev_ts) \
                / FUNDING_INTERVAL_MS
        sig = self._decide(candle)
        self.signal = sig  # what the strategy said on this candle (recorded by engines for analytics)
        self.prev_ts = candle.ts
        self.trader.stamp = {"strategy": self.strategy.fingerprint, "model": self.strategy.model_version}
        return fills + self.trader.end_candle(candle, sig, step)

    def position(self, candle: Candle) -> PositionState:
        t, b = self.trader, self.book
        step = candle.ts - self.prev_ts if self.prev_ts is not None and candle.ts > self.prev_ts else 0

        def bars(since: int | None) -> int:
            return int(round((candle.ts - since) / step)) if step and since is not None else 0

        if not b.qty:
            return PositionState(bars_since_exit=bars(t.exit_ts)) if t.exit_ts is not None else PositionState()
        upnl = (candle.close / b.avg_price - 1) * (1 if b.qty > 0 else -1) if b.avg_price else 0.0
        return PositionState(b.qty, b.avg_price, bars(t.entry_ts), 0, upnl * 100, t.held_target or 0.0)

    def roll_day(self, candle: Candle, gen: int) -> None:
        """On the first candle of a UTC day, write the opening equity (the daily PnL base)."""
        day = dt.datetime.fromtimestamp(candle.ts / 1000, dt.UTC).date().isoformat()
        if day == self.day:
            return
        self.book.mark(candle.open)
        equity = self.book.equity
        self.journal.append({"type": "day", "day": day, "equity": equity, "price": candle.open,
                            "source": self.source_id}, gen=gen)
        self.book.day_open_equity = equity
        self.day = day
