"""A kill -9 reaches a (local stand-in) Telegram chat: crash, then recovery."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import pytest
import redis

from backend.tests.conftest import ManagerProc, wait_for
from backend.tests.fakes.chat_servers import ChatServer
from backend.tests.integration.helpers import running_pid, wait_running


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    server = ChatServer()
    yield server
    server.close()


def test_crash_and_recovery_alerts(start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str,
                                   chat: ChatServer) -> None:
    start_manager(["BTCUSDT"], "--no-bot", telegram_bot_token="42:abc", telegram_chat_id="7",
                  telegram_api_base=chat.url, alert_window_s=2)  # alerts only (the bot: backend/tests/src/bot)
    pid = wait_running(r, ns, ["BTCUSDT"])["BTCUSDT"]
    chat.plan.extend(["429"])  # the first try is rate-limited: the alert still arrives
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (p := running_pid(r, ns, "BTCUSDT")) and p != pid, 10, what="back")
    wait_for(lambda: any("BTCUSDT crashed: killed by SIGKILL" in t for t in chat.texts())
             and any("BTCUSDT recovered" in t for t in chat.texts()), 10, what="alerts delivered")
    assert all(req["path"] == "/bot42:abc/sendMessage" for req in chat.requests)
