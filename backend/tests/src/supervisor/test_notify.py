"""Notification webhooks against local stand-ins speaking the real wire formats (a generic JSON endpoint,
Discord's execute-webhook): fills, stops and alerts go out; 429 (Discord's body ``retry_after``), 5xx and
timeouts are retried with back-off; what never gets through is a dead letter, counted in Redis and shown in
``/metrics``; one dead endpoint never holds up another."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from backend.src.app.metrics import render
from backend.src.core.fleet import Snapshot
from backend.src.core.keys import Keys
from backend.src.core.webhooks import parse_webhooks
from backend.src.supervisor.alerts import AlertDispatcher
from backend.src.supervisor.notify import Notifier, WebhookSink, build_notifiers, kind_of
from backend.tests.conftest import ManagerProc, wait_for
from backend.tests.fakes.chat_servers import ChatServer

EVENTS = frozenset({"fill", "stop", "crashed", "model_promoted"})
FILL = {"type": "fill", "symbol": "BTCUSDT", "side": "buy", "qty": "0.01", "price": "65000", "fee": "0.65",
        "reason": "sma cross", "position": "0.01", "candle_ts": "1", "order_id": "o1", "at": "1"}


def notifier(chat: ChatServer, client: httpx.Client, r: redis.Redis, ns: str, kind: str,
             waits: list[float] | None = None) -> Notifier:
    path = "/api/webhooks/123/TOKEN" if kind == "discord" else "/json-hook"
    return Notifier(WebhookSink(client, kind, chat.url + path, 1), r, Keys(ns), EVENTS,
                    sleep=(waits.append if waits is not None else None))


def test_wire_formats(chat: ChatServer, client: httpx.Client, r: redis.Redis, ns: str) -> None:
    assert notifier(chat, client, r, ns, "json").deliver(FILL)
    assert notifier(chat, client, r, ns, "discord").deliver({**FILL, "reason": "stop_loss", "side": "sell"})
    generic, discord = chat.requests
    assert generic["path"] == "/json-hook" and generic["body"]["event"] == "fill"
    assert generic["body"]["symbol"] == "BTCUSDT" and generic["body"]["fields"]["price"] == "65000"
    assert generic["body"]["text"] == "💱 BTCUSDT buy 0.01 @ 65000 (sma cross); position 0.01"
    assert discord["path"] == "/api/webhooks/123/TOKEN"
    assert discord["body"] == {"content": "🛡 BTCUSDT sell 0.01 @ 65000 (stop_loss); position 0.01",
                               "allowed_mentions": {"parse": []}}
    assert kind_of({**FILL, "reason": "liquidation"}) == "stop"
    stats = r.hgetall(f"{ns}notify_stats")
    assert stats == {"delivered:json:127.0.0.1#1": "1", "delivered:discord:127.0.0.1#1": "1"}


def test_retries_back_off_then_a_dead_letter(chat: ChatServer, client: httpx.Client, r: redis.Redis, ns: str) -> None:
    waits: list[float] = []
    chat.plan.extend(["429", "500"])
    assert notifier(chat, client, r, ns, "discord", waits).deliver(FILL)
    assert waits == [0.25, 1.0] and len(chat.requests) == 3, "Discord's body retry_after, then back-off"
    waits.clear()
    chat.plan.extend(["500", "slow", "500", "500"])
    t0 = time.monotonic()
    assert not notifier(chat, client, r, ns, "json", waits).deliver(FILL)
    assert waits == [0.5, 1.0, 2.0] and time.monotonic() - t0 < 3.0, "four attempts, client timeouts"
    chat.plan.extend(["404"])
    assert not notifier(chat, client, r, ns, "discord", waits).deliver(FILL), "a 404 is not retried"
    assert chat.requests[-1]["mode"] == "404" and waits == [0.5, 1.0, 2.0]
    stats = r.hgetall(f"{ns}notify_stats")
    assert stats["dead:json:127.0.0.1#1"] == "1" and stats["dead:discord:127.0.0.1#1"] == "1"
    dead = [f for _, f in r.xrange(f"{ns}dead_letters")]  # type: ignore[misc]
    assert [(d["sink"], d["why"]) for d in dead] == [("json:127.0.0.1#1", "json:127.0.0.1#1: HTTP 500"),
                                                      ("discord:127.0.0.1#1", "discord:127.0.0.1#1: HTTP 404")]
    assert all("TOKEN" not in d["sink"] + d["why"] for d in dead), "the URL's token is never shown"
    snap = Snapshot(time.time(), [], None, notify=r.hgetall(f"{ns}notify_stats"))  # type: ignore[arg-type]
    families = {f.name: f for f in text_string_to_metric_families(render(snap).decode())}
    samples = {(s.name, s.labels["sink"]): s.value for s in families["levibot_notifications_dead_letter"].samples}
    assert samples[("levibot_notifications_dead_letter_total", "json:127.0.0.1#1")] == 1.0
    delivered = {s.labels["sink"]: s.value for s in families["levibot_notifications_delivered"].samples}
    assert delivered["discord:127.0.0.1#1"] == 1.0


def test_the_dispatcher_sends_fills_and_alerts_and_a_dead_endpoint_holds_up_no_other(
        chat: ChatServer, r: redis.Redis, ns: str) -> None:
    keys = Keys(ns)
    client = httpx.Client(timeout=0.5)
    hooks = f"json:{chat.url}/json-hook,discord:{chat.url}/api/webhooks/1/T,json:http://127.0.0.1:9/dead"
    notifiers = build_notifiers(hooks, EVENTS, client, r, keys)
    for n in notifiers:
        n.sleep = lambda s: None  # type: ignore[method-assign]
    d = AlertDispatcher(r, keys, [], window_s=60, consumer="t", notifiers=notifiers)
    d.start()
    try:
        wait_for(lambda: r.exists(keys.notifications), 5, what="groups created")
        time.sleep(0.2)
        for i in range(5):
            r.xadd(keys.notifications, {**FILL, "order_id": f"o{i}"})
        r.xadd(keys.events, {"type": "model_promoted", "symbol": "", "version": "ensemble_x", "reason": "gate",
                             "ts": "0"})
        r.xadd(keys.events, {"type": "recovered", "symbol": "BTCUSDT", "seconds": "1", "ts": "0"})  # filtered out
        wait_for(lambda: len(chat.requests) == 12, 10, what="6 notifications to each live endpoint")
        wait_for(lambda: r.hget(keys.notify_stats, "dead:json:127.0.0.1#3") == "6", 10, what="dead letters")
        texts = chat.texts()
        assert texts.count("🧠 model ensemble_x promoted: gate") == 2
        assert sum(t.startswith("💱 BTCUSDT buy") for t in texts) == 10
    finally:
        d.stop()
        client.close()


def test_the_setting_is_checked_and_never_echoes_a_url() -> None:
    assert parse_webhooks("json:https://a.example/x, discord:https://discord.com/api/webhooks/1/SECRET") == [
        ("json", "https://a.example/x"), ("discord", "https://discord.com/api/webhooks/1/SECRET")]
    for text, msg in (("slack:https://x.example/SECRET", "entry 1: kind 'slack'"),
                      ("json:ftp://x.example/SECRET", "entry 1 (json): not an http(s) URL"),
                      ("json:https://a.example/1,discord:SECRET", "entry 2 (discord)")):
        with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")) as info:
            parse_webhooks(text)
        assert "SECRET" not in str(info.value)


def test_a_real_manager_sends_its_engines_fills_and_a_crash(chat: ChatServer, r: redis.Redis, ns: str,
                                                            start_manager: Callable[..., ManagerProc]) -> None:
    import os  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from backend.tests.integration.helpers import wait_running  # noqa: PLC0415

    start_manager(["BTCUSDT"], notify_webhooks=f"json:{chat.url}/json-hook,discord:{chat.url}/api/webhooks/9/T")
    pid = wait_running(r, ns, ["BTCUSDT"])["BTCUSDT"]
    wait_for(lambda: sum(q["body"].get("event") == "fill" for q in chat.requests) >= 2, 30, what="fills notified")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: any("crashed" in t for t in chat.texts() if t.startswith("💥")), 20, what="the crash notified")
    bodies = [q["body"] for q in chat.requests if q["path"] == "/json-hook"]
    fill = next(b for b in bodies if b["event"] == "fill")
    assert fill["symbol"] == "BTCUSDT" and {"side", "qty", "price", "position"} <= set(fill["fields"])
    assert any(q["path"].startswith("/api/webhooks/") and "BTCUSDT" in q["body"]["content"] for q in chat.requests)
