"""The chat stand-in (Telegram, Slack, Discord, a JSON hook) and a short-timeout client, for the alert and
notification tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend.tests.fakes.chat_servers import ChatServer


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    server = ChatServer()
    yield server
    server.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=0.5) as c:
        yield c
