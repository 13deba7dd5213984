"""``webhook``: trade the latest valid signal from outside (``POST /signals/{symbol}``, TradingView alerts,
other bots) — its target in [-1, 1] — and go flat when it expires (its own ``expires_at``, or
``default_expiry_s`` after it was received) or when there is none.

The engine polls the signal stream and journals every signal before each candle's decision, so the
decision is the latest signal as of that candle's close; it also journals each change of its decision
(``webhook_target``: the candle and the target, expiry included, which is judged by the wall clock). A
parity replay trades those decisions again (``TargetLog``), so what it compares is the execution; a plain
backtest has no signal source: the strategy is flat there.
"""

from __future__ import annotations

import bisect
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.src.core.types import Candle, Signal
from backend.src.trading.feeds import SignalFeed
from backend.src.trading.strategies.base import Strategy, fingerprint


class WebhookParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_expiry_s: float | None = Field(default=None, gt=0, le=30 * 86400)  # for signals that give none
    allow_short: bool = False  # take negative targets (perpetual symbols only); otherwise they mean flat


class TargetLog:
    """A webhook engine's decisions as its journal kept them (``webhook_target`` entries): the target at a candle."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        changes = sorted((int(e["candle_ts"]), int(e.get("seq", 0)), float(e["target"])) for e in entries
                         if e.get("type") == "webhook_target")
        self.ts = [c[0] for c in changes]
        self.targets = [c[2] for c in changes]

    def at(self, ts: int) -> float:
        i = bisect.bisect_right(self.ts, ts)
        return self.targets[i - 1] if i else 0.0


class WebhookStrategy(Strategy):
    name = "webhook"
    Params = WebhookParams

    def __init__(self, default_expiry_s: float | None = None, allow_short: bool = False,
                 feed: SignalFeed | None = None, replay: TargetLog | None = None) -> None:
        self.default_expiry_s, self.allow_short, self.feed, self.replay = default_expiry_s, allow_short, feed, replay
        self.fingerprint = fingerprint(self.name, {"default_expiry_s": default_expiry_s, "allow_short": allow_short})

    def decide(self, ts: int) -> tuple[float, str]:
        if self.replay is not None:
            return self.replay.at(ts), "webhook: the engine's decision, replayed from its journal"
        if self.feed is None:
            return 0.0, "webhook: no signal source (a backtest)"
        s = self.feed.latest
        if s is None:
            return 0.0, "webhook: no signal yet"
        expires = s.expires_at if s.expires_at is not None else (
            s.received_at + self.default_expiry_s if self.default_expiry_s is not None else None)
        if expires is not None and self.feed.now() >= expires:
            return 0.0, f"webhook: signal {s.id} from {s.sender} expired"
        if s.target < 0 and not (self.allow_short and self.shorts):
            return 0.0, f"webhook: signal {s.id} from {s.sender} is short; this symbol takes no shorts"
        return s.target, f"webhook: signal {s.id} from {s.sender}"

    def on_candle(self, candle: Candle) -> Signal | None:
        target, why = self.decide(candle.ts)
        return Signal(target, 0.5, 0.0, why)
