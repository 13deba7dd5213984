"""Imported in the engines' forkserver (its preload list): the strategy plugin modules the config names,
imported once there — with their file hash stamped, so that an engine forked from it imports nothing
again unless the file has changed since — rather than in every engine start or restart.

The manager names them in ``LEVIBOT_PLUGIN_PRELOAD`` before the forkserver starts. A module that fails
here is left to the engine, whose own import then refuses the strategy with one line.
"""

from __future__ import annotations

import os
import sys

from backend.src.trading import plugins


def preload(names: str) -> list[str]:
    """Import each module of a comma-separated list; the ones that failed."""
    failed = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        try:
            plugins.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the forkserver down
            failed.append(name)
            print(f"plugin {name} not preloaded: {type(exc).__name__}: {exc}", file=sys.stderr)
    return failed


preload(os.environ.get(plugins.PRELOAD_ENV, ""))
