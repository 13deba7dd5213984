"""Notifications out: fills, stops, crashes, promotions (every alert) to any number of webhook URLs.

``LEVIBOT_NOTIFY_WEBHOOKS`` (a secret: URLs often carry their token) lists ``kind:url`` entries, comma
separated; a kind is ``json`` (a generic JSON POST: ``{"event", "symbol", "text", "fields", "sent_at"}``)
or ``discord`` (an execute-webhook call: ``{"content": text}``, answered 204). Each URL gets a
``Notifier``: a thread with its own bounded queue in front of a ``WebhookSink``, so one slow or dead
endpoint never delays another, the Telegram and Slack alerts or the watchdog. A send is retried with
back-off (the endpoint's ``Retry-After`` / Discord's ``retry_after`` honoured, 5xx and timeouts retried,
other 4xx not); what still fails — or finds the queue full — is a dead letter: counted per sink in Redis
(``/metrics``: ``levibot_notifications_dead_letter_total``) and kept in a capped stream for inspection.

What is sent: the events the alert dispatcher reads (its de-duplicated alert texts, with the event's
fields), and every fill an engine made (``Keys.notifications``; a fill whose reason is a stop, a
take-profit or a liquidation is a ``stop``), filtered by ``LEVIBOT_NOTIFY_EVENTS``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis

from backend.src.core.keys import Keys
from backend.src.core.retry import retry_after_s, retrying
from backend.src.core.webhooks import parse_webhooks

log = logging.getLogger(__name__)
STOP_REASONS = ("stop_loss", "take_profit", "liquidation", "trailing_stop", "protective_stop")
QUEUE_SIZE = 1000
DISCORD_MAX = 2000


def kind_of(event: dict[str, str]) -> str:
    """A notification's kind: the event's type, ``stop`` for a protective fill."""
    if event.get("type") == "fill" and event.get("reason", "") in STOP_REASONS:
        return "stop"
    return event.get("type", "")


def text_of(event: dict[str, str]) -> str:
    """The one-line text of a fill notification (alerts come with their own)."""
    if event.get("text"):
        return event["text"]
    icon = "🛡" if kind_of(event) == "stop" else "💱"
    why = f" ({event['reason']})" if event.get("reason") else ""
    return (f"{icon} {event.get('symbol', '?')} {event.get('side', '?')} {event.get('qty', '?')} @ "
            f"{event.get('price', '?')}{why}; position {event.get('position', '?')}")


class SendError(Exception):
    """A send that failed: whether to retry, and after how long the endpoint asked for (alerts use it too)."""

    def __init__(self, message: str, *, retry_after: float | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.retry_after, self.retryable = retry_after, retryable


class WebhookSink:
    """One URL; its name carries the host, never the path (where the token is)."""

    def __init__(self, client: httpx.Client, kind: str, url: str, n: int) -> None:
        self.client, self.kind, self.url = client, kind, url
        self.name = f"{kind}:{urlsplit(url).hostname}#{n}"

    def body(self, event: dict[str, str]) -> dict[str, Any]:
        text = text_of(event)
        if self.kind == "discord":
            return {"content": text[:DISCORD_MAX], "allowed_mentions": {"parse": []}}
        fields = {k: v for k, v in event.items() if k not in ("text", "type")}
        return {"event": kind_of(event), "symbol": event.get("symbol", ""), "text": text, "fields": fields,
                "sent_at": round(time.time(), 3)}

    def post(self, event: dict[str, str]) -> None:
        try:
            res = self.client.post(self.url, json=self.body(event))
        except httpx.HTTPError as exc:
            raise SendError(f"{self.name}: {type(exc).__name__}") from None
        if 200 <= res.status_code < 300:
            return
        wait = retry_after_s(res.headers.get("Retry-After"))
        if wait is None and res.status_code == 429:  # Discord also says it in the body (seconds, a float)
            try:
                wait = float(res.json().get("retry_after"))
            except (ValueError, TypeError, AttributeError):
                wait = None
        raise SendError(f"{self.name}: HTTP {res.status_code}", retry_after=wait,
                         retryable=res.status_code in (408, 429) or res.status_code >= 500)


class Notifier(threading.Thread):
    """A sink's queue and its sending thread: retries with back-off, then a dead letter."""

    def __init__(self, sink: WebhookSink, r: redis.Redis, keys: Keys, events: frozenset[str], *,
                 attempts: int = 4, backoff_s: float = 0.5, max_wait_s: float = 30.0,
                 sleep: Callable[[float], object] | None = None) -> None:
        super().__init__(name=f"notify-{sink.name}", daemon=True)
        self.sink, self.r, self.keys, self.events = sink, r, keys, events
        self.attempts, self.backoff_s, self.max_wait_s = attempts, backoff_s, max_wait_s
        self.queue: queue.Queue[dict[str, str] | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self.stopping = threading.Event()
        self.sleep = sleep or self.stopping.wait

    def offer(self, event: dict[str, str]) -> None:
        if kind_of(event) not in self.events:
            return
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.dead(event, "queue full")

    def run(self) -> None:
        while True:
            event = self.queue.get()
            if event is None:
                return
            try:
                self.deliver(event)
            except Exception:  # never let a notifier die silently
                log.exception("notifier %s error", self.sink.name)

    def deliver(self, event: dict[str, str]) -> bool:
        policy = retrying(retry_if=lambda e: isinstance(e, SendError) and e.retryable and not self.stopping.is_set(),
                          attempts=self.attempts, base_s=self.backoff_s, sleep=self.sleep,
                          max_server_wait_s=self.max_wait_s,
                          server_wait=lambda e: e.retry_after if isinstance(e, SendError) else None,
                          label=f"notification to {self.sink.name}")
        try:
            policy(self.sink.post, event)
        except SendError as exc:
            self.dead(event, str(exc))
            return False
        self.count("delivered")
        return True

    def count(self, what: str) -> None:
        try:
            self.r.hincrby(self.keys.notify_stats, f"{what}:{self.sink.name}", 1)
        except redis.RedisError:
            pass

    def dead(self, event: dict[str, str], why: str) -> None:
        log.error("notification to %s not delivered (%s): %s", self.sink.name, why, kind_of(event))
        self.count("dead")
        try:
            self.r.xadd(self.keys.dead_letters, {"sink": self.sink.name, "why": why[:300],
                                                 "event": kind_of(event), "symbol": event.get("symbol", ""),
                                                 "text": text_of(event)[:500], "at": f"{time.time():.3f}"},
                        maxlen=10_000, approximate=True)
        except redis.RedisError:
            pass

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        self.join(timeout)


def build_notifiers(webhooks: str, events: frozenset[str], client: httpx.Client, r: redis.Redis,
                    keys: Keys) -> list[Notifier]:
    return [Notifier(WebhookSink(client, kind, url, n), r, keys, events)
            for n, (kind, url) in enumerate(parse_webhooks(webhooks), start=1)]
