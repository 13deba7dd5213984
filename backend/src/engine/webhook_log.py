"""What a ``webhook`` engine journals besides its trades: every signal from outside it read (before the
candle's decision: ``webhook_signal``) and every change of its decision (after it: ``webhook_target``, an
expiry included). A restart resumes the signal stream after the last signal journaled; a parity replay
trades the journaled decisions again (``strategies/webhook.TargetLog``)."""

from __future__ import annotations

from backend.src.core.types import Candle, Signal
from backend.src.trading.feeds import SignalFeed
from backend.src.trading.journal import Journal


class WebhookLog:
    def __init__(self, journal: Journal, feed: SignalFeed) -> None:
        self.journal, self.feed = journal, feed
        feed.resume(journal.of_type("webhook_signal"))
        targets = journal.of_type("webhook_target")
        self.target = float(targets[-1]["target"]) if targets else 0.0

    def before(self, gen: int) -> None:
        for sig in self.feed.poll():
            self.journal.append(sig.entry(), gen=gen)

    def after(self, candle: Candle, signal: Signal | None, gen: int) -> None:
        target = signal.target if signal is not None else 0.0
        if target != self.target:
            self.journal.append({"type": "webhook_target", "candle_ts": candle.ts, "target": target}, gen=gen)
            self.target = target
