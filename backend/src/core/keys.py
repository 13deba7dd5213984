"""Redis key names. Every key lives under the settings' namespace prefix."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

SENTIMENT_QUEUE, ONCHAIN_QUEUE, BACKTEST_QUEUE = "sentiment", "onchain", "backtest"
RQ_QUEUES = (SENTIMENT_QUEUE, ONCHAIN_QUEUE, BACKTEST_QUEUE)  # in the order workers serve them


@dataclass(frozen=True)
class Keys:
    ns: str = "levibot:"

    def state(self, symbol: str) -> str:
        """Hash: status, pid, started_at, restarts, last_error, position, equity, pnl, ..."""
        return f"{self.ns}engine:{symbol}"

    def heartbeat(self, symbol: str) -> str:
        """String ``<pid>:<generation>:<unix ts>`` with a TTL."""
        return f"{self.ns}hb:{symbol}"

    def history(self, symbol: str) -> str:
        """Capped stream: one entry per traded candle (ts, o, h, l, c, v, pos, eq, at) for the dashboard."""
        return f"{self.ns}hist:{symbol}"

    def signals(self, symbol: str) -> str:
        """Capped stream: every signal from outside the API accepted for the symbol (source, id, target,
        ts, expires_at, received_at, reason); the webhook strategy's feed and the dashboard's list."""
        return f"{self.ns}signals:{symbol}"

    def signal_seen(self, source: str, signal_id: str) -> str:
        """String with a TTL: a signal id already accepted from that source (replays: 409)."""
        return f"{self.ns}signal_seen:{source}:{signal_id}"

    def signal_rate(self, source: str, minute: int) -> str:
        """Counter with a TTL: signals a source sent in one minute (over the limit: 429)."""
        return f"{self.ns}signal_rate:{source}:{minute}"

    @property
    def notifications(self) -> str:
        """Capped stream: every fill of every engine (symbol, side, qty, price, fee, reason, position), for the
        notification webhooks (``supervisor/notify.py``)."""
        return f"{self.ns}notifications"

    @property
    def notify_stats(self) -> str:
        """Hash: ``delivered:<sink>`` / ``dead:<sink>`` counters of the notification webhooks (``/metrics``)."""
        return f"{self.ns}notify_stats"

    @property
    def dead_letters(self) -> str:
        """Capped stream: notifications no retry delivered (sink, why, event, symbol, text, at)."""
        return f"{self.ns}dead_letters"

    def fills(self, symbol: str) -> str:
        """Capped stream: one entry per fill (ts = candle, side, qty, price, fee, order_id, pos, at)."""
        return f"{self.ns}fills:{symbol}"

    def lease(self, symbol: str) -> str:
        """String ``<generation>:<owner>:<pid>``; the engine that holds it may trade."""
        return f"{self.ns}lease:{symbol}"

    def claim(self, symbol: str) -> str:
        """String ``<owner>`` with a TTL: the pool manager that runs the symbol (renewed every half second)."""
        return f"{self.ns}claim:{symbol}"

    def pool_symbols(self, pool: str) -> str:
        """Set: every symbol of the pool (each member adds its config's symbols)."""
        return f"{self.ns}pool:{pool}:symbols"

    def pool_members(self, pool: str) -> str:
        """Zset: live member managers of the pool, scored by when their membership lapses (ms)."""
        return f"{self.ns}pool:{pool}:members"

    def pool_capacity(self, pool: str) -> str:
        """Hash: member manager -> how many engines it may run (``--max-engines``)."""
        return f"{self.ns}pool:{pool}:capacity"

    def journal(self, symbol: str) -> str:
        """Stream: every journal entry (id ``<seq>-1``, field ``e`` = the entry's JSON), fenced by the lease."""
        return f"{self.ns}journal:{symbol}"

    def generation(self, symbol: str) -> str:
        """Monotonic fencing counter for the symbol's lease."""
        return f"{self.ns}gen:{symbol}"

    @property
    def engines(self) -> str:
        """Set of every symbol that has a state hash."""
        return f"{self.ns}engines"

    @property
    def events(self) -> str:
        """Stream of crash / hung / restart / failed events for alerting."""
        return f"{self.ns}events"

    @property
    def recoveries(self) -> str:
        """List of watchdog recovery times (seconds), newest first, capped."""
        return f"{self.ns}watchdog:recoveries"

    def manager(self, owner: str) -> str:
        """Hash describing a live manager (pid, host, symbols), with a TTL."""
        return f"{self.ns}manager:{owner}"

    @property
    def managers_pattern(self) -> str:
        return f"{self.ns}manager:*"

    def commands(self, owner: str) -> str:
        """Stream of operator commands for one manager (consumer group ``manager``)."""
        return f"{self.ns}commands:{owner}"

    def command_result(self, command_id: str) -> str:
        """Hash: status (done | error | expired), detail, done_at. TTL one day."""
        return f"{self.ns}command:{command_id}"

    def config(self, symbol: str) -> str:
        """Hash: version, json — the engine config the manager wants applied (hot reload)."""
        return f"{self.ns}config:{symbol}"

    @property
    def recovery_histogram(self) -> str:
        """Hash: cumulative-free bucket counts ``le:<bound>``, plus ``sum`` and ``count``."""
        return f"{self.ns}watchdog:recovery_hist"

    @property
    def global_stop(self) -> str:
        """Set while the portfolio-wide stop is active (value: reason)."""
        return f"{self.ns}risk:global_stop"

    @property
    def global_stop_override(self) -> str:
        """String (day): an operator cleared the stop for that day; it does not re-trigger."""
        return f"{self.ns}risk:global_stop_override"

    @property
    def risk_slots(self) -> str:
        """Hash: symbol -> reservation of a portfolio slot (holder, group, exposure)."""
        return f"{self.ns}risk:slots"

    @property
    def risk_policy(self) -> str:
        """Hash: version, json — the portfolio risk policy every engine applies."""
        return f"{self.ns}risk:policy"

    # --- AI features (RQ workers) -------------------------------------------------------
    def sentiment_cache(self, backend: str, digest: str) -> str:
        """String: cached score JSON for one normalised text and backend (TTL 1 h)."""
        return f"{self.ns}sent:cache:{backend}:{digest}"

    def rate_bucket(self, name: str) -> str:
        """Hash: tokens, ts, blocked_until — a token bucket shared by every worker."""
        return f"{self.ns}ratelimit:{name}"

    def news_item(self, item_id: str) -> str:
        """Hash: ts, title, source, symbols, score, scored_by."""
        return f"{self.ns}news:item:{item_id}"

    def news_index(self, symbol: str) -> str:
        """Sorted set: news item ids by publication time, per symbol (``MARKET``: all items)."""
        return f"{self.ns}news:by:{symbol}"

    def sentiment(self, symbol: str) -> str:
        """Hash: mean, count, decayed, window_s, updated_at — what engines read."""
        return f"{self.ns}sentiment:{symbol}"

    def onchain(self, symbol: str) -> str:
        """Hash: last known on-chain metrics JSON and the time they were fetched."""
        return f"{self.ns}onchain:{symbol}"

    def worker_alive(self, name: str) -> str:
        """String with a short TTL, refreshed by a live RQ worker."""
        return f"{self.ns}rqalive:{name}"

    def job_marker(self, job_id: str) -> str:
        """SET NX guard that makes a periodic enqueue idempotent across managers."""
        return f"{self.ns}jobonce:{job_id}"

    def rq_queue_key(self, name: str) -> str:
        """The Redis list RQ keeps a queue's waiting jobs in (its own layout: ``rq:queue:<queue name>``)."""
        return f"rq:queue:{self.queue(name)}"

    def queue(self, name: str) -> str:
        """RQ queue name (RQ adds its own ``rq:queue:``): bare under the default namespace, prefixed
        under another, so several deployments or test runs can share one Redis."""
        return name if self.ns == "levibot:" else f"{self.ns}{name}"

    def job_id(self, *parts: object) -> str:
        """A periodic job's id: namespace-scoped, in the characters RQ accepts (letters, digits, _ and -)."""
        ns = "".join(c if c.isalnum() else "_" for c in self.ns)
        return ns + "-".join(str(p) for p in parts)

    @property
    def retrain(self) -> str:
        """Hash: nightly retrain counters, duration histogram, last run, production version, model Sharpe."""
        return f"{self.ns}retrain:stats"

    # --- dashboard: backtests and parity runs (RQ jobs) ------------------------------------
    def run(self, run_id: str) -> str:
        """Hash: kind (backtest | parity), status, progress, spec, result (JSON), error, created_at."""
        return f"{self.ns}run:{run_id}"

    @property
    def runs(self) -> str:
        """Sorted set: run ids by creation time (the newest ``RUNS_KEPT`` are kept)."""
        return f"{self.ns}runs"

    # --- Telegram bot ------------------------------------------------------------------------
    def bot_offset(self, bot_id: int) -> str:
        """A Telegram bot's next update id: updates below it were handled (``getUpdates`` offset). Per bot
        (the token's numeric part): another bot's ids mean nothing to this one."""
        return f"{self.ns}bot:offset:{bot_id}"

    def chat_command_id(self, ident: str) -> str:
        """The id of a command a chat asked for, derived from what asked (an update, a confirmation), so
        that handling it twice queues it once (``commands.send(command_id=...)``)."""
        return uuid.uuid5(uuid.NAMESPACE_URL, f"levibot-telegram:{self.ns}:{ident}").hex

    def bot_confirm(self, token: str) -> str:
        """A control command waiting for its confirm button (hash; ``expires_at`` inside)."""
        return f"{self.ns}bot:confirm:{token}"
