"""The one retry policy and the one Retry-After parser, with an injected sleep (no waiting)."""

from __future__ import annotations

import email.utils
import threading

import pytest

from backend.src.core.retry import retry_after_s, retrying


class Hinted(Exception):
    def __init__(self, after: float | None) -> None:
        super().__init__(f"hint {after}")
        self.after = after


def failing(n: int, exc: Exception) -> tuple[list[int], object]:
    calls = [0]

    def fn() -> str:
        calls[0] += 1
        if calls[0] <= n:
            raise exc
        return "ok"

    return calls, fn


@pytest.mark.parametrize(("value", "want"), [("12", 12.0), ("0", 0.0), ("-3", 0.0), ("1.5", 1.5), (" 7 ", 7.0),
                                             (None, None), ("", None), ("soon", None), ("Mon, 99 Foo", None)])
def test_retry_after_seconds_and_garbage(value: str | None, want: float | None) -> None:
    assert retry_after_s(value) == want


def test_retry_after_http_date_is_relative_to_now() -> None:
    now = 1_800_000_000.0
    assert retry_after_s(email.utils.formatdate(now + 90, usegmt=True), now=lambda: now) == pytest.approx(90)
    assert retry_after_s(email.utils.formatdate(now - 90, usegmt=True), now=lambda: now) == 0.0


def test_exponential_backoff_capped_then_reraises_the_last_error() -> None:
    naps: list[float] = []
    calls, fn = failing(10, ValueError("down"))
    policy = retrying(retry_if=lambda e: isinstance(e, ValueError), attempts=6, base_s=0.5, cap_s=3.0,
                      sleep=naps.append)
    with pytest.raises(ValueError, match="down"):
        policy(fn)
    assert calls[0] == 6 and naps == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_server_hint_wins_and_is_capped_min_wait_is_a_floor() -> None:
    naps: list[float] = []
    seq = iter([Hinted(7.0), Hinted(500.0), Hinted(None)])

    def fn() -> str:
        exc = next(seq, None)
        if exc is not None:
            raise exc
        return "ok"

    policy = retrying(retry_if=lambda e: isinstance(e, Hinted), attempts=5, base_s=0.1, sleep=naps.append,
                      server_wait=lambda e: e.after if isinstance(e, Hinted) else None, max_server_wait_s=30,
                      min_wait=lambda e: 1.0)
    assert policy(fn) == "ok"
    assert naps == [7.0, 30.0, 1.0]


def test_not_retryable_is_raised_at_once() -> None:
    naps: list[float] = []
    calls, fn = failing(3, KeyError("refused"))
    with pytest.raises(KeyError):
        retrying(retry_if=lambda e: isinstance(e, ValueError), attempts=5, sleep=naps.append)(fn)
    assert calls[0] == 1 and naps == []


def test_unbounded_retries_end_when_the_stop_event_is_set() -> None:
    stop = threading.Event()
    naps: list[float] = []

    def nap(s: float) -> None:
        naps.append(s)
        if len(naps) == 4:
            stop.set()

    calls, fn = failing(100, ValueError("down"))
    with pytest.raises(ValueError):
        retrying(retry_if=lambda e: isinstance(e, ValueError), attempts=None, base_s=1, cap_s=30, sleep=nap,
                 stop_event=stop)(fn)
    assert naps == [1, 2, 4, 8] and calls[0] == 5
