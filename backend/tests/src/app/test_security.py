"""What the API lets in, on a real uvicorn over loopback: a control request's token is checked before its
body is read, bodies are bounded (413) and must arrive in time (408), and nothing over the limit is held."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from backend.tests.conftest import ApiServer, fast_env

LIMIT = 64 * 1024


@pytest.fixture
def guarded(redis_server: object, ns: str, data_dir: Path, api_token: str) -> Iterator[ApiServer]:
    server = ApiServer(fast_env(redis_server.url, ns, data_dir, api_token=api_token,  # type: ignore[attr-defined]
                                api_max_body_bytes=LIMIT, api_body_timeout_s=1.0))
    yield server
    server.stop()


def raw(server: ApiServer, head: str, body: bytes = b"", wait_s: float = 10.0) -> tuple[str, float]:
    """Send a request by hand (headers, then only ``body``) and read the answer: (status line, seconds)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait_s) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        t0 = time.monotonic()
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer.split(b"\r\n", 1)[0].decode(), time.monotonic() - t0


def rss(server: ApiServer) -> int:
    return int(psutil.Process(server.proc.pid).memory_info().rss)


def test_no_token_no_body_read(guarded: ApiServer) -> None:
    """A chunked upload without a token is answered 401 before one byte of its body is sent."""
    status, _ = raw(guarded, "POST /config/reload HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n")
    assert status.endswith("401 Unauthorized")
    status, _ = raw(guarded, "POST /config/reload HTTP/1.1\nHost: x\nContent-Length: 1200000000\n"
                             "Authorization: Bearer wrong\n")
    assert status.endswith("401 Unauthorized")


def test_a_body_over_the_limit_is_refused_before_it_is_held(guarded: ApiServer, api_token: str) -> None:
    auth = f"Authorization: Bearer {api_token}\n"
    status, _ = raw(guarded, f"POST /backtests HTTP/1.1\nHost: x\n{auth}Content-Length: 1200000000\n")
    assert status.endswith("413 Request Entity Too Large") or status.endswith("413 Content Too Large")
    before = rss(guarded)

    def chunks() -> Iterator[bytes]:
        for _ in range(400):  # 400 MB offered, chunked: no length to refuse up front
            yield b"x" * (1024 * 1024)

    try:
        res = httpx.post(guarded.url + "/backtests", content=chunks(), timeout=30,
                         headers={"Authorization": f"Bearer {api_token}"})
        assert res.status_code == 413
    except httpx.TransportError:
        pass  # the API answered 413 and closed while the client was still sending: also a refusal
    assert rss(guarded) - before < 32 * 1024 * 1024, "the body was not held"


def test_a_slow_body_times_out(guarded: ApiServer, api_token: str) -> None:
    status, took = raw(guarded, f"POST /backtests HTTP/1.1\nHost: x\nAuthorization: Bearer {api_token}\n"
                                "Content-Length: 100\n", body=b'{"sym')
    assert status.endswith("408 Request Timeout") and 0.9 <= took < 5.0


def test_the_bearer_scheme_is_case_insensitive(guarded: ApiServer, api_token: str) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):
        res = httpx.post(guarded.url + "/engines/BTCUSDT/explode", headers={"Authorization": f"{scheme} {api_token}"})
        assert res.status_code == 422, (scheme, res.text)  # past the token: the action is what is wrong
    assert httpx.post(guarded.url + "/engines/BTCUSDT/explode",
                      headers={"Authorization": f"Basic {api_token}"}).status_code == 401
    ok = httpx.post(guarded.url + "/backtests", headers={"Authorization": f"Bearer {api_token}"},
                    json={"symbols": ["BTCUSDT"], "days": 1})
    assert ok.status_code < 500 and ok.status_code != 413, ok.text
