"""Imported first in the engines' forkserver (its preload list), and only there: the forkserver ignores
SIGTERM and SIGINT.

The forkserver is the parent of every engine and reports their exit codes to the manager; a SIGTERM
to the whole process group (systemd's control-group kill, ``kill -TERM -- -<pgid>``, a container init)
would otherwise kill it beside the engines, and the manager would read every engine's exit as 255 (a
crash) instead of its clean stop. It still ends with the manager: it exits when the manager's end of its
socket closes. Engines set their own SIGTERM handler (``engine/main.py``); multiprocessing's forkserver
itself already ignores SIGINT.

It also silences one warning, in the forkserver and so in every engine forked from it: multiprocessing
re-runs the manager's main module in each child (``runpy.run_module(..., "__mp_main__")``), and because
that module is preloaded here on purpose (once, instead of a full import in every engine:
``engine_manager.main_module_preload``) runpy warns that it is "found in sys.modules ... prior to
execution" at every engine start. The re-run is what is wanted; the warning is noise on the terminal.
"""

from __future__ import annotations

import signal
import sys
import warnings


def in_forkserver() -> bool:
    """multiprocessing starts the forkserver as ``python -c 'from multiprocessing.forkserver import main; ...'``."""
    return sys.argv[:1] == ["-c"] and "multiprocessing.forkserver" in sys.modules


if in_forkserver():  # importing this module anywhere else changes nothing
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    warnings.filterwarnings("ignore", message=r"'[\w.]+' found in sys.modules after import of package",
                            category=RuntimeWarning, module="runpy")
