"""The analytics store: ClickHouse, embedded (chDB, in the analytics process) or a real server.

Everything speaks SQL and one wire: ClickHouse's HTTP interface (``POST`` the query, rows back as
``JSONEachRow``; errors as a non-200 with ClickHouse's exception text). A real server at
``LEVIBOT_CLICKHOUSE_URL`` is reached directly (any version: the HTTP interface is the one every
release keeps; the ``clickhouse-connect`` client refuses old servers). The embedded store is chDB
inside the analytics process, which owns its directory (chDB locks it) and serves the same HTTP
interface on loopback (``server.py``), so the API, the bot and the CLI use the same client either
way. With no server running (the manager stopped) the CLI opens chDB itself.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterable
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
        try:
            self.session = session.Session(str(path))  # type: ignore[no-untyped-call]
        except RuntimeError as exc:
            raise StoreError(f"embedded store {path}: {str(exc).splitlines()[-1][:300]}") from None
        self.lock = threading.Lock()  # one statement at a time through the session

    def execute(self, sql: str, *, readonly: bool = False) -> str:
        del readonly  # in-process: the caller checked the statement (server.is_read)
        with self.lock:
            try:
                res = self.session.query(sql, "TabSeparated")  # type: ignore[no-untyped-call]
            except RuntimeError as exc:
                raise StoreError(str(exc).strip()[:2000]) from None
        return "" if res is None else str(res)

    def close(self) -> None:
        with self.lock:
            self.session.close()  # type: ignore[no-untyped-call]


class HttpStore:
    """ClickHouse's HTTP interface: a real server, or the embedded one the analytics process serves.
    Credentials may be in the URL (``http://user:password@host:8123/?database=levibot``)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        auth = (parts.username or "default", parts.password or "") if parts.username else None
        netloc = parts.hostname or "" if parts.port is None else f"{parts.hostname}:{parts.port}"
        self.base = urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))
        self.params = dict(x.split("=", 1) for x in parts.query.split("&") if "=" in x)
        self.client = httpx.Client(timeout=timeout_s, auth=auth)
        self.where = f"{parts.scheme}://{netloc}"  # never the password

    def execute(self, sql: str, *, readonly: bool = False) -> str:
        return self._post(sql, {**JSON_SETTINGS, **self.params, **({"readonly": "1"} if readonly else {})})

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


def connect(settings: Settings, *, open_embedded: bool = False) -> Store:
    """The store for a client: the configured server, else the embedded one the analytics process
    serves; with ``open_embedded`` (the CLI, when no analytics process runs) chDB opened here."""
    url = settings.clickhouse_url.get_secret_value() if settings.clickhouse_url else None
    if url:
        return HttpStore(url)
    try:
        served = url_file(settings).read_text().strip()
    except OSError:
        served = ""
    if served:
        store = HttpStore(served, timeout_s=30.0)
        try:
            store.execute("SELECT 1")
            return store
        except StoreError:
            store.close()
    if open_embedded:
        return ChdbStore(store_dir(settings) / "db")
    raise StoreError("no analytics store: the manager's analytics process is not running "
                     "(or set LEVIBOT_CLICKHOUSE_URL)")
