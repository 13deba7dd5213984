"""Alert delivery against local Telegram/Slack stand-ins, dedup, and the dispatcher on the real Redis."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import redis

from backend.src.core.keys import Keys
from backend.src.core.settings import Settings
from backend.src.supervisor.alerts import AlertDispatcher, Deduplicator, SlackSink, TelegramSink, build_sinks, deliver
from backend.tests.fakes.chat_servers import ChatServer


def telegram(chat: ChatServer, client: httpx.Client) -> TelegramSink:
    return TelegramSink(chat.url, "123:SECRET", -100, 0.5)


def test_telegram_wire_format(chat: ChatServer, client: httpx.Client) -> None:
    assert deliver(telegram(chat, client), "hello")
    (req,) = chat.requests
    assert req["path"] == "/bot123:SECRET/sendMessage"
    assert req["body"] == {"chat_id": -100, "text": "hello", "link_preview_options": {"is_disabled": True}}


def test_429_retry_after_is_honoured(chat: ChatServer, client: httpx.Client) -> None:
    chat.plan.extend(["429"])
    waits: list[float] = []
    assert deliver(telegram(chat, client), "x", sleep=waits.append)
    assert waits == [1.0] and len(chat.requests) == 2


def test_5xx_malformed_and_timeouts_are_retried_then_given_up(chat: ChatServer, client: httpx.Client) -> None:
    chat.plan.extend(["500", "malformed"])
    waits: list[float] = []
    assert deliver(telegram(chat, client), "x", sleep=waits.append)
    assert len(chat.requests) == 3 and waits == [0.5, 1.0]
    chat.plan.extend(["slow", "slow", "slow"])
    t0 = time.monotonic()
    assert not deliver(telegram(chat, client), "y", sleep=lambda s: None)  # never raises
    assert time.monotonic() - t0 < 3.0, "client timeout, not the server's 3 s"


def test_permanent_errors_are_not_retried(chat: ChatServer, client: httpx.Client) -> None:
    chat.plan.extend(["404"])
    assert not deliver(telegram(chat, client), "x", sleep=lambda s: None)
    chat.plan.extend(["404"])
    assert not deliver(SlackSink(client, chat.url + "/services/T/B/X"), "x", sleep=lambda s: None)
    assert len(chat.requests) == 2


def test_slack_wire_format_and_retry_after(chat: ChatServer, client: httpx.Client) -> None:
    chat.plan.extend(["429"])
    waits: list[float] = []
    assert deliver(SlackSink(client, chat.url + "/services/T/B/X"), "boom", sleep=waits.append)
    assert waits == [1.0] and chat.requests[-1]["body"] == {"text": "boom"}


def test_dead_endpoint_is_logged_not_raised(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    sink = TelegramSink("http://127.0.0.1:1", "1:SECRET", 5, 0.5)
    assert not deliver(sink, "x", sleep=lambda s: None)
    assert "alert not delivered to telegram:5" in caplog.text and "SECRET" not in caplog.text


def test_crash_loop_is_one_alert_then_one_summary() -> None:
    d = Deduplicator(window_s=60)
    sent = [d.offer({"type": "crashed", "symbol": "BTCUSDT", "reason": f"killed #{i}"}, now=float(i))
            for i in range(50)]
    assert [s for s in sent if s] == ["💥 BTCUSDT crashed: killed #0"]
    assert d.offer({"type": "crashed", "symbol": "ETHUSDT", "reason": "x"}, now=10) is not None
    assert d.offer({"type": "hung", "symbol": "BTCUSDT"}, now=10) is None, "not an alerted event"
    assert d.due(now=59) == []
    (summary,) = [s for s, _ in d.due(now=61) if "BTCUSDT" in s]
    assert "killed #49" in summary and "+49 more 'crashed' alerts for BTCUSDT" in summary
    assert d.offer({"type": "crashed", "symbol": "BTCUSDT", "reason": "again"}, now=200) is not None


def test_sinks_from_settings(tmp_path: Path, client: httpx.Client) -> None:
    s = Settings(data_dir=tmp_path, telegram_bot_token="1:x", telegram_chat_id="5, -1007",  # type: ignore[arg-type]
                 slack_webhook_url="http://127.0.0.1/hook")
    assert [k.name for k in build_sinks(s, client)] == ["telegram:5", "telegram:-1007", "slack"]
    assert build_sinks(Settings(data_dir=tmp_path), client) == []
    assert "1:x" not in repr(s), "secrets never printed"


def test_dispatcher_consumes_events_from_redis(chat: ChatServer, client: httpx.Client, r: redis.Redis,
                                               ns: str) -> None:
    keys = Keys(ns)
    d = AlertDispatcher(r, keys, [telegram(chat, client), SlackSink(client, chat.url + "/services/x")],
                        window_s=0.5, consumer="test")
    d._create_group()
    for i in range(20):
        r.xadd(keys.events, {"type": "crashed", "symbol": "SOLUSDT", "reason": f"#{i}", "ts": "0"})
    r.xadd(keys.events, {"type": "recovered", "symbol": "SOLUSDT", "seconds": "0.05", "ts": "0"})
    d.step(block_ms=10)
    time.sleep(0.6)
    d.step(block_ms=10)
    texts = chat.texts()
    assert texts.count("💥 SOLUSDT crashed: #0") == 2  # telegram + slack
    assert texts.count("✅ SOLUSDT recovered in 0.05s") == 2
    assert sum("+19 more 'crashed'" in t for t in texts) == 2
    assert r.xpending(keys.events, "alerts")["pending"] == 0
