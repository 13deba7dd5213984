"""Imported first in the engines' forkserver (its preload list), and only there: the forkserver ignores
SIGTERM.

The forkserver is the parent of every engine and reports their exit codes to the manager; a SIGTERM
to the whole process group (systemd's control-group kill, ``kill -TERM -- -<pgid>``, a container init)
would otherwise kill it beside the engines, and the manager would read every engine's exit as 255 (a
crash) instead of its clean stop. It still ends with the manager: it exits when the manager's end of its
socket closes. multiprocessing's forkserver itself already ignores SIGINT.

Not SIG_IGN: a forked engine inherits the handler until ``engine/main.py`` installs its own, and a SIGTERM
in that window (a pool handing a symbol over milliseconds after its start) would be lost, leaving an
engine trading that its manager believes is stopping. In a child the handler keeps the signal in
``PENDING``; ``run_engine`` reads it once its own handler is in place and stops at once.

It also silences one warning, in the forkserver and so in every engine forked from it: multiprocessing
re-runs the manager's main module in each child (``runpy.run_module(..., "__mp_main__")``), and because
that module is preloaded here on purpose (once, instead of a full import in every engine:
``engine_manager.main_module_preload``) runpy warns that it is "found in sys.modules ... prior to
execution" at every engine start. The re-run is what is wanted; the warning is noise on the terminal.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from types import FrameType


def in_forkserver() -> bool:
    """multiprocessing starts the forkserver as ``python -c 'from multiprocessing.forkserver import main; ...'``."""
    return sys.argv[:1] == ["-c"] and "multiprocessing.forkserver" in sys.modules


PENDING: list[int] = []  # SIGTERMs a forked child received before its engine's own handler
SERVER_PID = 0


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    if os.getpid() != SERVER_PID:  # a child between its fork and run_engine's handler: keep it for later
        PENDING.append(signum)


if in_forkserver():  # importing this module anywhere else changes nothing
    SERVER_PID = os.getpid()
    signal.signal(signal.SIGTERM, _on_sigterm)
    warnings.filterwarnings("ignore", message=r"'[\w.]+' found in sys.modules after import of package",
                            category=RuntimeWarning, module="runpy")
