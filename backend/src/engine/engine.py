"""One trading engine: the body of a per-symbol OS process.

candles -> strategy -> order (fenced by the lease generation) -> venue (paper or live) -> fill ->
journal (fsync) -> position book. A heartbeat + state write goes to Redis every ``heartbeat_interval_s``
in one Lua call that first checks the lease: a stale engine cannot write anything.
Redis being down does not stop trading on paper; the journal is the record of truth.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from multiprocessing.connection import Connection

import redis
from pydantic import ValidationError

from backend.src.core.config import StrategyConfig, SymbolConfig, quote_of
from backend.src.core.errors import (
    EXIT_OK,
    EXIT_ORPHANED,
    FatalError,
    JournalError,
    LeaseError,
    RedisUnavailable,
)
from backend.src.core.keys import Keys
from backend.src.core.lease import BEAT, Lease
from backend.src.core.logging_setup import SymbolLogger
from backend.src.core.runtime import Clock, SystemClock
from backend.src.core.states import EngineState
from backend.src.core.types import Candle
from backend.src.engine import journal_stream, strategy_check
from backend.src.engine.history import History
from backend.src.engine.journal import FileJournal
from backend.src.engine.risk_gate import RiskGate
from backend.src.engine.sources import open_source
from backend.src.engine.spec import EngineSpec
from backend.src.engine.webhook_log import WebhookLog
from backend.src.market import candle_log
from backend.src.market.candles import CandleSource
from backend.src.models.backends import Backends
from backend.src.trading.factory import build_strategy
from backend.src.trading.feeds import FeedReader, OnchainReader, SentimentReader, SignalFeed
from backend.src.trading.session import TradingSession
from backend.src.trading.strategies.base import Strategy
from backend.src.venue.factory import exchange_for, open_venue

CARRIED_OVER_LIMIT = "risk:carried_over_limit"


class LeaseLost(FatalError):
    pass


class Engine:
    def __init__(
        self, spec: EngineSpec, r: redis.Redis, clock: Clock | None = None, lifeline: Connection | None = None
    ) -> None:
        self.clock = clock or SystemClock()  # every clock reading and sleep goes through it
        self.spec, self.symbol, self.r = spec, spec.symbol, r
        self.settings = spec.settings
        self.keys = Keys(self.settings.namespace)
        self.log = SymbolLogger(logging.getLogger(__name__), {"symbol": spec.symbol})
        self.pid = os.getpid()
        self.parent = os.getppid()
        self.lifeline = lifeline
        self.stop_requested = False
        self.status = EngineState.STARTING
        self.started_at = self.clock.time()
        self.lease = Lease(r, self.keys, spec.symbol, spec.owner, self.pid, self.settings.lease_ttl_s)
        local = FileJournal(self.settings.journal_dir / f"{spec.symbol}.jsonl")
        # restored from Redis when another host traded it last
        self.journal, self.stream = journal_stream.attach(r, self.keys, spec.symbol, self.lease, self.settings, local)
        self._check_journal_source()
        self.config = cfg = spec.config
        self.history = History(r, self.keys, spec.symbol, candle_log.path_of(self.settings.data_dir, spec.symbol),
                               self.settings.history_len)
        self.config_version = ""
        self.exchange = exchange_for(self.settings, spec.source)  # a live feed's ccxt client (no network yet)
        self.venue = open_venue(spec.symbol, self.settings, spec.source, cfg, self.exchange)
        self.gate = RiskGate(r, self.keys, spec.symbol, spec.policy, fails_closed=self.venue.fails_closed)
        self.feeds = FeedReader(  # what the strategy sees besides candles: news sentiment, on-chain, funding
            SentimentReader(r, self.keys, spec.symbol, max_age_s=3 * self.settings.news_interval_s),
            OnchainReader(r, self.keys, spec.symbol, max_age_s=3 * self.settings.onchain_interval_s))
        self.signals = SignalFeed(r, self.keys, spec.symbol, self.clock.time)  # a webhook engine's signals
        self.webhook = WebhookLog(self.journal, self.signals)
        self.session = TradingSession(spec.symbol, cfg, self.journal, self.build(cfg.strategy), self.venue,
                                      source_id=spec.source.identity, sizer=self.gate.sizer, gate=self.gate)
        self.trader = self.session.trader
        self.book = self.trader.book
        self.source: CandleSource | None = None
        self.redis_ok = True
        self.last_beat = 0.0
        self.cursor_ts = self.trader.last_candle
        self.candles = 0
        self.idle_logged = False
        self.last_candle_at = self.clock.time()
        self.candle_period_s = 0.0
        self.close_carried = False  # a position carried over a restart that no portfolio slot admits

    def build(self, cfg: StrategyConfig) -> Strategy:
        return build_strategy(cfg, self.settings.models_dir, self.feeds, Backends.of(self.settings), self.signals)

    def _check_journal_source(self) -> None:
        """A journal holds positions priced by one feed: never mix a synthetic and a replay book."""
        written = next((str(e["source"]) for e in reversed(self.journal.entries) if "source" in e), None)
        if written is not None and written != self.spec.source.identity:
            self.journal.close()
            raise JournalError(
                f"journal {self.journal.path} holds positions from source {written!r}, not "
                f"{self.spec.source.identity!r}; use another LEVIBOT_DATA_DIR for this source"
            )

    # ------------------------------------------------------------------ startup

    def acquire_lease(self) -> None:
        deadline = self.clock.time() + self.settings.start_timeout_s
        while True:
            try:
                self.lease.acquire(min_generation=self.journal.max_gen + 1)
                return
            except (RedisUnavailable, LeaseError) as exc:
                # In a pool our manager holds the claim: a foreign lease is the last owner's engine letting go.
                waits = isinstance(exc, RedisUnavailable) or self.settings.pool is not None
                if not waits or self.clock.time() > deadline or self.stop_requested:
                    raise
                self.clock.sleep(0.2)

    def build_source(self) -> CandleSource:
        saved: dict[str, str] = {}
        try:
            saved = self.r.hgetall(self.keys.state(self.symbol))  # type: ignore[assignment]
        except redis.RedisError:
            pass
        opened = open_source(self.symbol, self.spec.source, self.config, self.settings, saved=saved,
                             last_candle=self.trader.last_candle, last_price=self.book.last_price,
                             exchange=self.exchange, clock=self.clock.time, log=self.log)
        self.cursor_ts, self.candle_period_s = opened.cursor, opened.period_s
        return opened.source

    def start(self) -> None:
        self.acquire_lease()
        if self.stream is not None:
            self.stream.after_lease(self.journal)
        price = self.book.last_price or self.book.avg_price
        if not self.gate.adopt(self.lease.token, self.book.qty, self.book.qty * price, self.book.equity):
            self.close_carried = True
            self.log.warning("carried position exceeds a portfolio limit after restart; closing it on the next candle",
                             extra={"position": self.book.qty})
        self.source = self.build_source()
        refused = self.check_plugin(self.config.strategy)
        if refused:
            raise FatalError(refused)
        history = self.source.warmup(self.session.strategy.warmup_candles)
        self.session.warmup(history)
        self.history.session(self.journal.seq, history, why="start")
        self.trader.connect(history[-1].close if history else self.book.last_price, gen=self.gen,
                            now=self.clock.time())
        self.status = EngineState.RUNNING
        self.beat(force=True)
        self.log.info(
            "engine running",
            extra={"generation": self.lease.generation, "venue": self.venue.name, "position": self.book.qty,
                   "equity": round(self.book.equity, 2), "journal_entries": len(self.journal.entries)},
        )

    def check_plugin(self, cfg: StrategyConfig) -> str:
        """A plugin's look-ahead and warm-up check on the symbol's history: why it may not trade, or ""."""
        if not strategy_check.wanted(cfg) or self.source is None:
            return ""
        return strategy_check.verdict(cfg, lambda: build_strategy(cfg, self.settings.models_dir,
                                                                  backends=Backends.of(self.settings)),
                                      self.source, self.log, self.settings.data_dir / "checks")

    # ------------------------------------------------------------------ trading

    def on_candle(self, candle: Candle) -> None:
        self.candles += 1
        self.last_candle_at = self.clock.time()
        self.cursor_ts = max(self.cursor_ts, candle.ts)
        if self.close_carried:
            self.close_carried = False
            closed = self.trader.flatten(candle.close, candle.ts, gen=self.gen, now=self.clock.time(),
                                         reason=CARRIED_OVER_LIMIT)
            self.log.warning("carried position over a portfolio limit closed", extra={"fills": len(closed)})
            self.history.fills(closed, self.book.qty)
        if self.config.strategy.name == "webhook":  # every signal taken since the last candle, before the decision
            self.webhook.before(self.gen)
        fills = self.session.on_candle(candle, gen=self.gen, now=self.clock.time(), fence=self.check_fence)
        if self.config.strategy.name == "webhook":
            self.webhook.after(candle, self.session.signal, self.gen)
        self.history.candle(candle, self.book.qty, self.book.equity, self.clock.time(), self.session.signal,
                            self.session.strategy.model_version or "")
        self.history.fills(fills, self.book.qty)
        for fill in fills:
            self.log.info("fill", extra={"side": fill.side, "qty": round(fill.qty, 8), "price": fill.price,
                                         "fee": round(fill.fee, 6), "order_id": fill.order_id,
                                         "position": self.book.qty, "generation": self.gen})
        if fills:
            self.beat(force=True)

    @property
    def gen(self) -> int:
        return self.lease.generation

    def check_fence(self) -> None:
        """The order path's fencing check: our generation must still own the lease."""
        try:
            cur = self.r.get(self.keys.lease(self.symbol))
        except redis.RedisError:
            self.redis_ok = False
            return  # paper trading continues through a Redis outage; the journal flock fences locally
        if cur is not None and cur != self.lease.token:
            raise LeaseLost(f"{self.symbol}: lease taken over by {cur!s}; generation {self.gen} is fenced off")

    # ------------------------------------------------------------------ heartbeat

    def state_fields(self) -> dict[str, str | int | float]:
        b = self.book
        lf = b.last_fill
        return {
            "status": self.status.value, "pid": self.pid, "generation": self.gen,
            "started_at": round(self.started_at, 3), "owner": self.spec.owner,
            "position": round(b.qty, 10), "avg_price": b.avg_price, "last_price": b.last_price,
            "equity": round(b.equity, 6), "pnl": round(b.pnl, 6), "daily_pnl": round(b.daily_pnl, 6),
            "realized_pnl": round(b.realized - b.fees, 6), "unrealized_pnl": round(b.unrealized, 6),
            "cursor_ts": self.cursor_ts, "candles": self.candles, "last_candle_at": round(self.last_candle_at, 3),
            "candle_period_s": round(self.candle_period_s, 6), "config_version": self.config_version,
            "exhausted": int(bool(self.source and self.source.exhausted)), "source": self.spec.source.identity,
            "last_trade": dt.datetime.fromtimestamp(lf.ts, dt.UTC).isoformat().replace("+00:00", "Z") if lf else "",
            "heartbeat_at": round(self.clock.time(), 3), "day": self.risk_day, "halted": self.gate.halted_reason,
            "volatility": round(self.gate.sizer.ewma_abs_ret, 10), "policy_version": self.gate.policy_version,
            "strategy_hash": self.session.strategy.fingerprint, "model_version": self.session.strategy.model_version,
            "strategy": self.session.strategy.trading_as,
            "strategy_failures": self.session.failures, "strategy_error": self.session.failing,
            "quote": quote_of(self.symbol) or "", "usd_per_quote": self.config.usd_per_quote(self.symbol) or "",
            **self.session.trader.exposure(),
        }

    def beat(self, force: bool = False) -> None:
        now = self.clock.time()
        if not force and now - self.last_beat < self.settings.heartbeat_interval_s:
            return
        self.last_beat = now
        self.history.flush(self.journal.seq, self.session.strategy.warmup_candles)
        lease_key, token, ttl_ms, gen = self.lease.renew_args()
        fields = [str(x) for kv in self.state_fields().items() for x in kv]
        hb = f"{self.pid}:{gen}:{now:.3f}"
        hb_ttl = int(self.settings.heartbeat_timeout_s * 2000)
        try:
            held, version = self.r.eval(  # type: ignore[misc]
                BEAT, 6, lease_key, self.keys.generation(self.symbol), self.keys.heartbeat(self.symbol),
                self.keys.state(self.symbol), self.keys.engines, self.keys.config(self.symbol),
                token, ttl_ms, gen, hb, hb_ttl, self.symbol, *fields,
            )
        except redis.RedisError as exc:
            if self.redis_ok:
                self.log.warning("redis unreachable; trading on, the journal is the record of truth",
                                 extra={"error": str(exc)})
            self.redis_ok = False
            return
        if not self.redis_ok:
            self.log.info("redis back; heartbeats resumed")
            self.redis_ok = True
        if not held:
            raise LeaseLost(f"{self.symbol}: lease lost (generation {gen}); stopping")
        if self.stream is not None and self.stream.pending:
            self.stream.flush()
        if version and version != self.config_version:
            self.reload_config(str(version))
        self.check_global_stop()

    @property
    def risk_day(self) -> str:
        """The UTC day of the last candle (simulated days in a replay), else today."""
        return self.session.day or dt.datetime.fromtimestamp(self.clock.time(), dt.UTC).date().isoformat()

    def check_global_stop(self) -> None:
        """Every beat: trigger/see/clear the portfolio stop. Seen: flat and no entries, at once."""
        try:
            flag = self.gate.beat(self.risk_day)
        except redis.RedisError:
            return
        if flag and not self.gate.halted_reason:
            self.gate.halted_reason = flag.split("|", 1)[-1]
            fills = self.trader.flatten(self.book.last_price, self.cursor_ts, gen=self.gen, now=self.clock.time(),
                                        reason="global_stop")
            self.history.fills(fills, self.book.qty)
            self.log.error("GLOBAL STOP: %s; position closed, entries refused", self.gate.halted_reason,
                           extra={"fills": len(fills), "position": self.book.qty})
            self.beat(force=True)
        elif not flag and self.gate.halted_reason:
            self.log.info("global stop cleared; entries allowed again")
            self.gate.halted_reason = ""

    # ------------------------------------------------------------------ hot reload

    def reload_config(self, version: str) -> None:
        """Apply the config the manager published, without a restart; keep the old one if invalid."""
        try:
            raw = self.r.hget(self.keys.config(self.symbol), "json")
            new = SymbolConfig.model_validate_json(str(raw or "{}"))
        except (redis.RedisError, ValidationError) as exc:
            self.log.error("config version %s not applied: %s", version, exc)
            self.config_version = version  # do not retry a bad payload every beat
            return
        self.config_version = version
        if new == self.config:
            return
        strategy = None
        if new.strategy != self.config.strategy and self.source is not None:
            try:
                strategy = self.build(new.strategy)
            except (ValueError, OSError) as exc:  # checked by the manager; a LeviLang file may have changed since
                self.log.error("config version %s not applied: its strategy does not build (%s); the running "
                               "config stays", version, exc)
                return
            refused = self.check_plugin(new.strategy)
            if refused:
                self.log.error("config version %s not applied: %s; the running strategy stays", version, refused,
                               extra={"alert": True})
                self.reject(refused)
                return
        old, self.config = self.config, new
        self.trader.apply_config(new)
        warm = None
        if strategy is not None and self.source is not None:
            warm = self.source.warmup(strategy.warmup_candles)
            self.session.use_strategy(strategy, warm)
        self.history.session(self.journal.seq, warm if warm is not None else self.history.last(
            self.session.strategy.warmup_candles))  # the parity panel compares from here
        changed = sorted(k for k in type(new).model_fields if getattr(new, k) != getattr(old, k))
        self.log.info("config version %s applied: %s", version, ", ".join(changed), extra={"changed": changed})

    def reject(self, reason: str) -> None:
        """A config this engine will not apply, announced like the manager's rejections (alerts, dashboard)."""
        try:
            self.r.xadd(self.keys.events, {"type": "config_rejected", "symbol": self.symbol, "reason": reason[:1000],
                                           "ts": f"{self.clock.time():.3f}"}, maxlen=10_000, approximate=True)
        except redis.RedisError:
            pass

    # ------------------------------------------------------------------ loop

    def orphaned(self) -> bool:
        """The manager is gone: its lifeline pipe hit EOF, or our parent changed."""
        if self.lifeline is not None and self.lifeline.poll(0):
            return True
        return os.getppid() != self.parent

    def step(self, budget_s: float = 0.1) -> None:
        """Process the candles that are due (for at most ``budget_s``), then heartbeat if due.

        The budget keeps heartbeats flowing while a fast replay has thousands of candles due.
        """
        source = self.source
        if source is None:
            raise FatalError(f"{self.symbol}: engine stepped before start()")
        deadline = self.clock.monotonic() + budget_s
        candle = source.poll(self.clock.time())
        while candle is not None and not self.stop_requested:  # a stop begun: no further candle, no order
            self.on_candle(candle)
            if self.clock.monotonic() > deadline:
                break
            candle = source.poll(self.clock.time())
        if source.exhausted and not self.idle_logged:
            self.log.info("replay finished; holding position, waiting for stop")
            self.idle_logged = True
        self.beat()

    def run(self) -> int:
        self.start()
        while not self.stop_requested:
            if self.orphaned():
                self.log.error("supervisor gone; stopping so that no engine trades unsupervised")
                self.shutdown()
                return EXIT_ORPHANED
            self.step()
            if self.source is not None and self.source.exhausted:
                self.clock.sleep(0.1)  # a finished replay idles, heartbeating
            else:
                self.clock.sleep(0.02 if self.candle_period_s >= 0.02 else 0.0005)
        self.shutdown()
        return EXIT_OK

    def shutdown(self) -> None:
        self.status = EngineState.STOPPING
        self.beat(force=True)
        self.status = EngineState.STOPPED
        self.beat(force=True)
        try:
            self.r.delete(self.keys.heartbeat(self.symbol))
            self.lease.release()
        except redis.RedisError:
            pass
        self.journal.close()
        self.log.info("engine stopped", extra={"position": self.book.qty, "equity": round(self.book.equity, 2)})
