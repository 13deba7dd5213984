"""Alerts to Telegram (``sendMessage`` through python-telegram-bot, the library the bot uses) and
Slack (incoming webhook, httpx).

A background thread consumes the manager's event stream (consumer group ``alerts``, so
nothing is lost across a manager restart), de-duplicates per (event, symbol): the first
event is sent at once, the rest of the window is folded into one summary with a count.
Sending has timeouts and retries (429 ``retry_after`` / ``Retry-After`` honoured); a dead
endpoint is logged, never raised: alerting can never block or crash the watchdog.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

import httpx
import redis

from backend.src.core.commands import StreamReply
from backend.src.core.keys import Keys
from backend.src.core.retry import retry_after_s, retrying, telegram_retry_after_s
from backend.src.core.settings import Settings
from backend.src.supervisor.notify import Notifier, SendError

__all__ = ["AlertDispatcher", "Deduplicator", "SendError", "SlackSink", "TelegramSink", "build_sinks", "deliver"]

log = logging.getLogger(__name__)

ALERTED = {
    "crashed": "💥 {symbol} crashed: {reason}",
    "failed": "🛑 {symbol} FAILED (no more restarts): {reason}",
    "recovered": "✅ {symbol} recovered in {seconds}s",
    "restarted": "♻️ {symbol} restarted ({reason}): {detail}",
    "stalled": "⏸ {symbol} stalled: alive but no candle for {idle_s}s",
    "global_stop": "🚨 GLOBAL STOP: {reason}",
    "config_rejected": "⚠️ config rejected, previous config stays: {reason}",
    "retrain_failed": "❌ nightly retrain failed, production model untouched: {reason}",
    "model_rejected": "⚠️ new model {version} kept as a candidate: {reason}",
    "model_promoted": "🧠 model {version} promoted: {reason}",
    "parity_drift": "🔍 {symbol}: live differs from its backtest by {amount} that no cause explains ({share} of the "
                    "gap; alert at {threshold}) — /parity {symbol}",
}
GROUP = "alerts"
MAX_RETRY_AFTER_S = 30.0


class Sink(Protocol):
    name: str

    def send(self, text: str) -> None: ...

    def close(self) -> None: ...


class TelegramSink:
    """One chat. python-telegram-bot's ``Bot`` on a private event loop: the dispatcher is a thread."""

    def __init__(self, base_url: str, token: str, chat_id: int, timeout_s: float) -> None:
        from telegram import Bot  # noqa: PLC0415 - only when Telegram is configured
        from telegram.request import HTTPXRequest  # noqa: PLC0415

        os.environ.setdefault("PTB_TIMEDELTA", "true")  # see core/retry.telegram_retry_after_s
        self.name, self.chat_id, self.token = f"telegram:{chat_id}", chat_id, token
        self.loop = asyncio.new_event_loop()
        self.bot = Bot(token, base_url=f"{base_url.rstrip('/')}/bot",
                       request=HTTPXRequest(connect_timeout=timeout_s, read_timeout=timeout_s,
                                            write_timeout=timeout_s, pool_timeout=timeout_s))

    def send(self, text: str) -> None:
        from telegram import LinkPreviewOptions, error  # noqa: PLC0415

        try:
            self.loop.run_until_complete(self.bot.send_message(self.chat_id, text,
                                                               link_preview_options=LinkPreviewOptions(True)))
        except error.RetryAfter as exc:
            raise SendError(f"telegram: 429 {exc.message}", retry_after=telegram_retry_after_s(exc)) from None
        except (error.BadRequest, error.Forbidden, error.InvalidToken, error.ChatMigrated) as exc:
            raise SendError(f"telegram: {type(exc).__name__}: {exc.message}".replace(self.token, "***"),
                            retryable=False) from None
        except error.TelegramError as exc:  # NetworkError (5xx, connection), TimedOut, unreadable answer
            raise SendError(f"telegram: {type(exc).__name__}: {exc.message}".replace(self.token, "***")) from None
        except (TypeError, KeyError, ValueError) as exc:  # "ok" but not a message: a broken proxy or stand-in
            raise SendError(f"telegram: unreadable answer ({type(exc).__name__})") from None

    def close(self) -> None:
        self.loop.run_until_complete(self.bot.shutdown())
        self.loop.close()


class SlackSink:
    name = "slack"

    def __init__(self, client: httpx.Client, webhook_url: str) -> None:
        self.client, self.url = client, webhook_url

    def send(self, text: str) -> None:
        try:
            res = self.client.post(self.url, json={"text": text})
        except httpx.HTTPError as exc:
            raise SendError(f"slack: {type(exc).__name__}") from exc
        if res.status_code == 200:
            return
        raise SendError(f"slack: HTTP {res.status_code} {res.text[:100]}".strip(),
                        retry_after=retry_after_s(res.headers.get("Retry-After")),
                        retryable=res.status_code == 429 or res.status_code >= 500)

    def close(self) -> None:
        self.client.close()


def deliver(sink: Sink, text: str, *, attempts: int = 3, backoff_s: float = 0.5,
            sleep: Callable[[float], object] = time.sleep) -> bool:
    """Send with retries (the endpoint's Retry-After honoured, up to MAX_RETRY_AFTER_S); False
    (and a log line) if it could not be delivered: a dead endpoint is never fatal."""
    policy = retrying(retry_if=lambda e: isinstance(e, SendError) and e.retryable, attempts=attempts,
                      base_s=backoff_s, sleep=sleep, max_server_wait_s=MAX_RETRY_AFTER_S,
                      server_wait=lambda e: e.retry_after if isinstance(e, SendError) else None,
                      label=f"alert to {sink.name}")
    try:
        policy(sink.send, text)
        return True
    except SendError as exc:
        tries = policy.statistics.get("attempt_number", attempts)
        log.error("alert not delivered to %s after %d attempt(s): %s", sink.name, tries, exc)
        return False


def build_sinks(s: Settings, client: httpx.Client) -> list[Sink]:
    sinks: list[Sink] = []
    if s.telegram_bot_token:
        sinks += [TelegramSink(s.telegram_api_base, s.telegram_bot_token.get_secret_value(), chat, s.alert_timeout_s)
                  for chat in s.telegram_chats]
    if s.slack_webhook_url:
        sinks.append(SlackSink(client, s.slack_webhook_url.get_secret_value()))
    return sinks


@dataclass
class Window:
    opened_at: float
    suppressed: int = 0
    last: dict[str, str] = field(default_factory=dict)


class Deduplicator:
    """First event of a (kind, symbol) goes out at once; the rest of the window becomes one summary."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.windows: dict[tuple[str, str], Window] = {}

    def offer(self, event: dict[str, str], now: float) -> str | None:
        kind, symbol = event.get("type", ""), event.get("symbol", "")
        template = ALERTED.get(kind)
        if template is None:
            return None
        key = (kind, symbol)
        win = self.windows.get(key)
        if win is not None and now - win.opened_at < self.window_s:
            win.suppressed += 1
            win.last = event
            return None
        self.windows[key] = Window(now)
        return _fmt(template, event)

    def due(self, now: float) -> list[tuple[str, dict[str, str]]]:
        """The summaries of closed windows, each with the latest event it folds in."""
        out = []
        for key, win in list(self.windows.items()):
            if now - win.opened_at >= self.window_s:
                if win.suppressed:
                    kind, symbol = key
                    latest = _fmt(ALERTED[kind], win.last)
                    out.append((f"{latest}\n(+{win.suppressed} more '{kind}' alerts for {symbol or 'the fleet'} "
                                f"in the last {self.window_s:.0f}s)", {**win.last, "suppressed": str(win.suppressed)}))
                del self.windows[key]
        return out


def _fmt(template: str, event: dict[str, str]) -> str:
    class Missing(dict[str, str]):
        def __missing__(self, key: str) -> str:
            return "?"

    return template.format_map(Missing(event))


class AlertDispatcher(threading.Thread):
    """Alerts to the sinks (de-duplicated texts); alerts and every fill to the notifiers (``notify.py``)."""

    def __init__(self, r: redis.Redis, keys: Keys, sinks: list[Sink], *, window_s: float, consumer: str,
                 clock: Callable[[], float] = time.monotonic, notifiers: list[Notifier] | None = None) -> None:
        super().__init__(name="alerts", daemon=True)
        self.r, self.keys, self.sinks, self.consumer, self.clock = r, keys, sinks, consumer, clock
        self.notifiers = notifiers or []
        self.streams = [keys.events] + ([keys.notifications] if self.notifiers else [])
        self.dedup = Deduplicator(window_s)
        self.stopping = threading.Event()
        self.sent = 0

    def run(self) -> None:
        created = False
        while not self.stopping.is_set():
            try:
                if not created:
                    self._create_group()
                    created = True
                self.step()
            except redis.RedisError as exc:
                log.debug("alerts waiting for redis: %s", exc)
                self.stopping.wait(1.0)
            except Exception:  # never let alerting die silently
                log.exception("alert dispatcher error")
                self.stopping.wait(1.0)

    def _create_group(self) -> None:
        for stream in self.streams:
            try:
                self.r.xgroup_create(stream, GROUP, id="$", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def step(self, block_ms: int = 500) -> None:
        reply = cast(StreamReply, self.r.xreadgroup(GROUP, self.consumer, dict.fromkeys(self.streams, ">"),
                                                    count=100, block=block_ms))
        for stream, messages in reply or []:
            for msg_id, event in messages:
                if stream == self.keys.events:
                    text = self.dedup.offer(event, self.clock())
                    if text:
                        self.broadcast(text, event)
                else:  # a fill, for the notifiers only
                    for n in self.notifiers:
                        n.offer(event)
                self.r.xack(stream, GROUP, msg_id)
        for text, event in self.dedup.due(self.clock()):
            self.broadcast(text, event)

    def broadcast(self, text: str, event: dict[str, str] | None = None) -> None:
        for sink in self.sinks:
            if deliver(sink, text, sleep=self.stopping.wait):  # a stop interrupts a retry wait
                self.sent += 1
        for n in self.notifiers:
            n.offer({**(event or {}), "text": text})

    def start(self) -> None:
        for n in self.notifiers:
            n.start()
        super().start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.join(timeout)
        for n in self.notifiers:
            n.stop(timeout)
        if not self.is_alive():
            for sink in self.sinks:
                sink.close()
