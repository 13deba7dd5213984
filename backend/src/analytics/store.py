"""The analytics store: ClickHouse, embedded (chDB, in the analytics process) or a real server.

Everything speaks SQL and one wire: ClickHouse's HTTP interface (``POST`` the query, rows back as
``JSONEachRow``; errors as a non-200 with ClickHouse's exception text). A real server at
``LEVIBOT_CLICKHOUSE_URL`` is reached directly (any version: the HTTP interface is the one every
release keeps; the ``clickhouse-connect`` client refuses old servers). The embedded store is chDB
inside the analytics process, which owns its directory (chDB locks it) and serves the same HTTP
interface on loopback (``server.py``), so the API, the bot and the CLI use the same client either
way. With no server running (the manager stopped) the CLI opens chDB itself.

The embedded store has one owner at a time: whoever holds ``<data dir>/clickhouse/shipper.lock``
(an flock, dropped by the kernel on ``kill -9``) may open chDB. The analytics process holds it for
its life; the CLI's ``sql`` and ``backfill`` hold it only while they use chDB themselves. A client
that finds the lock held and no served store (an analytics process starting after a crash, another
CLI query) waits instead of opening chDB beside the owner (``owned_store``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from backend.src.core.settings import Settings

JSON_SETTINGS = {"output_format_json_quote_64bit_integers": "0"}  # numbers as numbers, old servers too


class StoreError(Exception):
    """The store refused a statement or could not be reached (the message says which)."""


class Store(Protocol):
    def execute(self, sql: str, *, readonly: bool = False) -> str: ...

    def close(self) -> None: ...


def quote(value: str) -> str:
    """A string literal for SQL (symbols are checked upstream; this is the second line of defence)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def rows(store: Store, sql: str) -> list[dict[str, Any]]:
    """A SELECT's rows as dicts (``FORMAT JSONEachRow`` appended)."""
    out = store.execute(f"{sql.rstrip().rstrip(';')} FORMAT JSONEachRow")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def insert(store: Store, table: str, records: Iterable[dict[str, Any]]) -> int:
    """One INSERT for all ``records`` (one block: in ClickHouse, all of it or none)."""
    body = "\n".join(json.dumps(r, separators=(",", ":"), allow_nan=False) for r in records)
    if not body:
        return 0
    store.execute(f"INSERT INTO {table} FORMAT JSONEachRow\n{body}\n")
    return body.count("\n") + 1


class ChdbStore:
    """chDB in this process (one process per directory: chDB locks it)."""

    def __init__(self, path: Path) -> None:
        from chdb import session  # noqa: PLC0415 - a 170 MB library: only where the store lives

        path.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)  # the store's files, its lock and its URL (with the password) are the owner's
        try:
            self.session = session.Session(str(path))  # type: ignore[no-untyped-call]
        except RuntimeError as exc:
            raise StoreError(f"embedded store {path}: {str(exc).splitlines()[-1][:300]}") from None
        self.lock = threading.Lock()  # one statement at a time through the session

    def execute(self, sql: str, *, readonly: bool = False, fmt: str = "TabSeparated") -> str:
        del readonly  # in-process: the caller checked the statement (server.guard)
        with self.lock:
            try:
                res = self.session.query(sql, fmt)  # type: ignore[no-untyped-call]
            except RuntimeError as exc:
                raise StoreError(str(exc).strip()[:2000]) from None
        return "" if res is None else str(res)

    def explain(self, sql: str) -> str:
        """The statement's syntax tree (``EXPLAIN AST``: parsed by ClickHouse, not run)."""
        return self.execute(f"EXPLAIN AST {sql}")

    def table_functions(self) -> frozenset[str]:
        return frozenset(self.execute("SELECT name FROM system.table_functions").split())

    def close(self) -> None:
        with self.lock:
            self.session.close()  # type: ignore[no-untyped-call]


class HttpStore:
    """ClickHouse's HTTP interface: a real server, or the embedded one the analytics process serves.
    Credentials may be in the URL (``http://user:password@host:8123/?database=levibot``)."""

    def __init__(self, url: str, timeout_s: float = 10.0, *, readonly: bool = False) -> None:
        self.readonly = readonly  # every statement read-only (the server refuses a write, or lifting it)
        parts = urlsplit(url)
        auth = (parts.username or "default", parts.password or "") if parts.username else None
        netloc = parts.hostname or "" if parts.port is None else f"{parts.hostname}:{parts.port}"
        self.base = urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))
        self.params = dict(x.split("=", 1) for x in parts.query.split("&") if "=" in x)
        self.client = httpx.Client(timeout=timeout_s, auth=auth)
        self.where = f"{parts.scheme}://{netloc}"  # never the password

    def execute(self, sql: str, *, readonly: bool = False) -> str:
        # readonly=2: reads, and the session settings sent here (JSON_SETTINGS); no write, DDL or lifting readonly
        ro = {"readonly": "2"} if readonly or self.readonly else {}
        return self._post(sql, {**JSON_SETTINGS, **self.params, **ro})

    def _post(self, sql: str, params: dict[str, str]) -> str:
        try:
            res = self.client.post(self.base, params=params, content=sql.encode())
        except httpx.HTTPError as exc:
            raise StoreError(f"analytics store at {self.where} unreachable ({type(exc).__name__})") from None
        if res.status_code != 200:
            raise StoreError(res.text.strip()[:2000] or f"HTTP {res.status_code}")
        return res.text

    def ensure_database(self) -> None:
        """``CREATE DATABASE IF NOT EXISTS`` for the URL's ``database`` (a fresh server has only ``default``)."""
        db = self.params.get("database")
        if db and db != "default":
            params = {k: v for k, v in self.params.items() if k != "database"}
            self._post(f"CREATE DATABASE IF NOT EXISTS {db}", params)

    def close(self) -> None:
        self.client.close()


def store_dir(settings: Settings) -> Path:
    return settings.data_dir / "clickhouse"


def url_file(settings: Settings) -> Path:
    """Where the analytics process writes the URL of the embedded store it serves."""
    return store_dir(settings) / "url"


def unavailable(settings: Settings) -> str | None:
    """Why this install has no analytics store (None: it has one). The runtime image carries no chDB: it
    uses a ClickHouse server."""
    if settings.clickhouse_url or importlib.util.find_spec("chdb") is not None:
        return None
    return "the embedded store needs chdb-core-lite, which this install lacks; set LEVIBOT_CLICKHOUSE_URL"


def connect(settings: Settings) -> Store:
    """The store for a client that reads (the API, the bot, the CLI's ``sql``): the configured server
    (as its read-only user when ``clickhouse_read_url`` names one; every statement with ``readonly=2``
    either way: reads and session settings only), else the embedded one the analytics process serves
    (the CLI: ``owned_store``)."""
    url = settings.clickhouse_read_url or settings.clickhouse_url
    if url:
        return HttpStore(url.get_secret_value(), readonly=True)
    try:
        served = url_file(settings).read_text().strip()
    except OSError:
        served = ""
    if served:
        store = HttpStore(served, timeout_s=30.0, readonly=True)
        try:
            store.execute("SELECT 1")
            return store
        except StoreError:
            store.close()
    raise StoreError("no analytics store: the manager's analytics process is not running "
                     "(or set LEVIBOT_CLICKHOUSE_URL)")


def lock_store(settings: Settings, wait_s: float = 0.0) -> int:
    """The embedded store's ownership (module docstring): the lock's descriptor (close it to release).
    Retries for ``wait_s`` while another holds it, then raises BlockingIOError."""
    import fcntl  # noqa: PLC0415

    path = store_dir(settings) / "shipper.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise
        time.sleep(0.1)


@contextmanager
def owned_store(settings: Settings, wait_s: float = 30.0) -> Iterator[Store]:
    """The store for one CLI command: the configured server; else the embedded store its owner serves;
    else, when nobody owns it, chDB opened here under the lock. While the lock is held and nothing is
    served (an analytics process between its start and its first served request, a backfill, another
    query), waits up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            store = connect(settings)
        except StoreError:
            pass
        else:
            try:
                yield store
            finally:
                store.close()
            return
        try:
            lock = lock_store(settings)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise StoreError(f"the embedded store in {store_dir(settings)} stayed busy for {wait_s:.0f}s "
                                 "(an analytics process starting, a backfill or another query); "
                                 "try again") from None
            time.sleep(0.2)
            continue
        try:
            embedded = ChdbStore(store_dir(settings) / "db")
            try:
                yield embedded
            finally:
                embedded.close()
            return
        finally:
            os.close(lock)
