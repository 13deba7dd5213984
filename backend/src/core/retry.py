"""One retry policy for every outside call (exchange, alert endpoints, remote LLMs, the live
candle feed), built on tenacity, and one ``Retry-After`` parser.

The policy: up to ``attempts`` tries (``None``: until ``stop_event`` is set); between tries
the server's own hint when it gave one (``server_wait``: Retry-After, Telegram's
``retry_after``, an LLM's ``retryDelay``; capped at ``max_server_wait_s``), else exponential
backoff from ``base_s`` doubling to ``cap_s``, never below ``min_wait(exc)`` (e.g. 1 s after
an exchange 429/418). Only what ``retry_if`` accepts is retried; the last error is re-raised
as itself. The sleep is injectable, so tests run without waiting.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import threading
import time
import warnings
from collections.abc import Callable

import tenacity

log = logging.getLogger(__name__)


def retry_after_s(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """An HTTP ``Retry-After`` value as seconds from now: delta-seconds or an HTTP date;
    None when absent or unparseable."""
    if not value or not value.strip():
        return None
    raw = value.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


def _never(_: BaseException) -> float | None:
    return None


def _zero(_: BaseException) -> float:
    return 0.0


def retrying(*, retry_if: Callable[[BaseException], bool], attempts: int | None = 3, base_s: float = 0.5,
             cap_s: float = 30.0, sleep: Callable[[float], object] = time.sleep,
             server_wait: Callable[[BaseException], float | None] = _never,
             min_wait: Callable[[BaseException], float] = _zero, max_server_wait_s: float = 60.0,
             stop_event: threading.Event | None = None, label: str = "call") -> tenacity.Retrying:
    """A ``tenacity.Retrying`` with the project's policy (see the module docstring)."""

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if exc is None:
            return 0.0
        hinted = server_wait(exc)
        if hinted is not None:
            return float(min(max_server_wait_s, max(0.0, hinted)))
        backoff = min(cap_s, base_s * 2 ** (state.attempt_number - 1))
        return float(max(min_wait(exc), backoff))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        nap = state.next_action.sleep if state.next_action else 0.0
        of = f"/{attempts - 1}" if attempts else ""
        log.warning("%s failed (%s: %s); retry %d%s in %.1fs", label, type(exc).__name__, str(exc)[:200],
                    state.attempt_number, of, nap)

    def nap(seconds: float) -> None:
        sleep(seconds)

    stops: list[tenacity.stop.stop_base] = []
    if attempts is not None:
        stops.append(tenacity.stop_after_attempt(attempts))
    if stop_event is not None:
        stops.append(tenacity.stop_when_event_set(stop_event))
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(retry_if),
        stop=tenacity.stop_any(*stops) if stops else tenacity.stop_never,
        wait=wait,
        sleep=nap,
        before_sleep=before_sleep,
        reraise=True,
    )


def telegram_retry_after_s(exc: BaseException) -> float | None:
    """python-telegram-bot's ``RetryAfter.retry_after`` in seconds; None for any other error. The library
    gives an int with a deprecation warning unless ``PTB_TIMEDELTA`` opts in to its next major
    version's timedelta, which the bot and the alert sender do; either is read here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wait = getattr(exc, "retry_after", None)
    if isinstance(wait, dt.timedelta):
        return wait.total_seconds()
    return float(wait) if isinstance(wait, int | float) else None
