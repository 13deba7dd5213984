"""A real manager with its own API (and, on request, RQ workers), for the dashboard tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from backend.src.core.redis_launcher import free_port
from backend.tests.conftest import ManagerProc, http_up, wait_for
from backend.tests.integration.helpers import wait_running


@pytest.fixture
def manager_api(start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str,
                api_token: str) -> Callable[..., str]:
    """Start the manager for ``symbols`` with its API on a free port; returns the API's URL once the
    engines run and the API answers."""

    def start(symbols: list[str], *args: str, **env: object) -> str:
        port = free_port()
        start_manager(symbols, *args, api_enabled="true", api_port=port, api_token=api_token, **env)
        wait_running(r, ns, symbols)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_up(url), 20, what="api up")
        return url

    return start
