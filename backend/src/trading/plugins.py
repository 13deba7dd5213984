"""Python strategy plugins: a ``package.module:ClassName`` spec, or a name an installed package
declares in the ``levibot.strategies`` entry-point group, loaded as a ``Strategy`` class.

A plugin module is imported once per process that needs it: by the manager when it checks a config,
and once in the engines' forkserver (its preload list), so an engine start or restart forks an
already-imported module. The module's file is hashed when it is imported (the hash is kept on the
module object itself, ``__levibot_hash__``); a load whose file no longer has that hash re-imports the
module (``importlib.reload``) — that is the hot reload, in the manager when the file changes and in
each engine when the manager publishes the config with the new hash. Only the module the spec names
is watched: a helper module it imports is re-read when the named module is.

Whatever a plugin's import or class raises (a syntax error, an import error, an exception at module
level) is one ``ValueError`` naming ``strategy.python`` and the spec: a config with it is refused and
the running version stays.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import re
import sys
from pathlib import Path
from types import ModuleType

from backend.src.core.config import PLUGIN_SPEC
from backend.src.trading.strategies.base import Strategy

GROUP = "levibot.strategies"
HASH_ATTR = "__levibot_hash__"
PRELOAD_ENV = "LEVIBOT_PLUGIN_PRELOAD"  # the plugin modules the engines' forkserver imports (comma-separated)
_SPEC = re.compile(PLUGIN_SPEC)


def entry_points() -> dict[str, str]:
    """Installed plugins: entry-point name → ``module:Class``."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=GROUP)}


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def module_of(spec: str) -> str:
    return spec.split(":", 1)[0]


def source_file(spec: str) -> Path | None:
    """The file of an imported plugin module (None before its import, or for a namespace package)."""
    mod = sys.modules.get(module_of(spec))
    f = getattr(mod, "__file__", None) if mod is not None else None
    return Path(f) if f else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def import_module(name: str) -> ModuleType:
    """The module, imported once; re-imported when its file changed since."""
    mod = sys.modules.get(name)
    if mod is None:
        importlib.invalidate_caches()  # a plugin file written after this process started
        mod = importlib.import_module(name)
    else:
        f = getattr(mod, "__file__", None)
        if f and Path(f).exists() and file_hash(Path(f)) != getattr(mod, HASH_ATTR, None):
            mod = importlib.reload(mod)
    f = getattr(mod, "__file__", None)
    if f and Path(f).exists():
        setattr(mod, HASH_ATTR, file_hash(Path(f)))
    return mod


def load(spec: str) -> type[Strategy]:
    """The plugin class a spec names (ValueError naming ``strategy.python`` on any failure)."""
    if not _SPEC.match(spec):
        raise ValueError(f"strategy.python: {spec!r} is not package.module:ClassName")
    mod_name, cls_name = spec.split(":", 1)
    try:
        mod = import_module(mod_name)
    except Exception as exc:  # noqa: BLE001 - a plugin's import can raise anything; the config is refused
        raise ValueError(f"strategy.python: {spec}: importing {mod_name} failed ({_first_line(exc)})") from None
    cls = getattr(mod, cls_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Strategy):
        what = "not found" if cls is None else "not a Strategy subclass (see docs/strategies.md)"
        raise ValueError(f"strategy.python: {spec}: {cls_name} {what} in {mod_name}")
    if getattr(cls, "__abstractmethods__", None):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ValueError(f"strategy.python: {spec}: {cls_name} does not implement {missing}")
    return cls


def source_hash(spec: str) -> str:
    """The hash of the plugin module's file as imported (``load`` first)."""
    mod = sys.modules.get(module_of(spec))
    return str(getattr(mod, HASH_ATTR, "")) if mod is not None else ""
