"""JSON-lines logging, configured once per entry point.

Each process writes its own file (``engine-<SYMBOL>-<YYYY-MM-DD>.jsonl`` or
``manager-<YYYY-MM-DD>.jsonl``) with one ``os.write`` per record on an O_APPEND fd:
no cross-process queue, nothing buffered that a ``kill -9`` could lose, no interleaving.
Files roll over at UTC midnight; files older than the retention are deleted.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

_STD_ATTRS = frozenset(
    vars(logging.LogRecord("x", 0, "x", 0, "x", None, None)).keys() | {"message", "asctime", "taskName"}
)


def utc_day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


class JsonFormatter(logging.Formatter):
    def __init__(self, static: dict[str, object]) -> None:
        super().__init__()
        self.static = static

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **self.static,
            "pid": os.getpid(),
        }
        for k, v in vars(record).items():
            if k not in _STD_ATTRS and k not in obj:
                obj[k] = v if isinstance(v, str | int | float | bool | type(None)) else repr(v)
        if record.exc_info:
            obj["exc"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(obj, separators=(",", ":"), default=str)


class DailyJsonlHandler(logging.Handler):
    """Appends to ``<dir>/<prefix>-<UTC date>.jsonl``; rolls daily; keeps ``retention_days``."""

    def __init__(self, directory: Path, prefix: str, retention_days: int = 30) -> None:
        super().__init__()
        self.directory, self.prefix, self.retention_days = directory, prefix, retention_days
        directory.mkdir(parents=True, exist_ok=True)
        self.day = ""
        self.fd = -1

    def path_for(self, day: str) -> Path:
        return self.directory / f"{self.prefix}-{day}.jsonl"

    def _roll(self, day: str) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = os.open(self.path_for(day), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self.day = day
        self.purge(day)

    def purge(self, today: str) -> None:
        cutoff = dt.date.fromisoformat(today) - dt.timedelta(days=self.retention_days)
        for p in self.directory.glob(f"{self.prefix}-*.jsonl"):
            stamp = p.stem[len(self.prefix) + 1 :]
            try:
                if dt.date.fromisoformat(stamp) < cutoff:
                    p.unlink(missing_ok=True)
            except ValueError:
                continue  # another prefix sharing ours (engine-BTC vs engine-BTCUSDT)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            day = utc_day(record.created)
            if day != self.day:
                self._roll(day)
            os.write(self.fd, (self.format(record) + "\n").encode())
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        super().close()


class Redact(logging.Filter):
    """Secrets never reach a log line: each is replaced in the message and in a traceback's text
    (the Telegram token is part of every Bot API URL, which HTTP clients like to log)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def scrub(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        msg = record.getMessage()
        clean = self.scrub(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info:
            record.exc = self.scrub("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


def configure(
    log_dir: Path, prefix: str, *, level: str = "INFO", retention_days: int = 30,
    static: dict[str, object] | None = None, console: bool = False, secrets: Iterable[str] = (),
) -> DailyJsonlHandler:
    """Replace the root logger's handlers with the daily JSON-lines file (and stderr); ``secrets``
    are blanked out of every record. httpx's per-request lines (URLs) are kept at WARNING."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    redact = Redact(secrets)
    handler = DailyJsonlHandler(log_dir, prefix, retention_days)
    handler.setFormatter(JsonFormatter(static or {}))
    handler.addFilter(redact)
    root.addHandler(handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        stream.addFilter(redact)
        stream.addFilter(lambda rec: getattr(rec, "console", True))
        root.addHandler(stream)
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler


class SymbolLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Binds the symbol to every line and keeps the call's own ``extra`` fields."""

    def process(self, msg: object, kwargs: MutableMapping[str, Any]) -> tuple[object, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs
