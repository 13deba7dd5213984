"""Exceptions split by what the caller should do about them.

* ``FatalError`` and subclasses: stop, mark the engine ``failed`` and alert;
  retrying cannot help (bad config, lease held elsewhere, corrupt journal).
* ``TransientError`` and subclasses: retry with backoff (network, Redis down).
* ``UsageError``: bad input at an entry point; one clear line, exit code 2.
"""

from __future__ import annotations

# Exit codes shared by the manager CLI and the engine processes.
EXIT_OK = 0
EXIT_CRASH = 1  # unexpected exception: the watchdog restarts with backoff
EXIT_USAGE = 2  # bad input or unreachable dependency at start
EXIT_FATAL = 3  # engine: do not restart, mark failed and alert
EXIT_ORPHANED = 4  # engine: its supervisor vanished, it stopped itself
EXIT_SIGNALLED = 5  # engine: a SIGTERM/SIGINT it did not expect (a service stop, an operator's kill): stopped cleanly


class LeviBotError(Exception):
    """Base of every error raised on purpose by LeviBot."""


class UsageError(LeviBotError):
    """Bad argument, config or environment at an entry point (exit 2)."""


class FatalError(LeviBotError):
    """Stop and alert: retrying the same thing will fail the same way."""


class LeaseError(FatalError):
    """The symbol's lease is held by another live engine, or was lost."""


class JournalError(FatalError):
    """The journal is unreadable or a write was refused by its fencing check."""


class TransientError(LeviBotError):
    """Retry with backoff: the cause is expected to go away."""


class RedisUnavailable(TransientError):
    """Redis did not answer (down, restarting, network)."""
