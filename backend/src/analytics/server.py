"""The embedded store's HTTP face: ClickHouse's HTTP interface on loopback, served by the analytics
process that owns the chDB directory (``POST /`` with the query in the body, or ``?query=``; a
non-200 with the exception text on error; ``GET /ping`` answers ``Ok.``).

It serves reads only, and only to whoever holds the per-start credentials (HTTP Basic, or ClickHouse's
``X-ClickHouse-User``/``X-ClickHouse-Key`` headers) that the analytics process writes, inside the
store's URL, to a file only its owner can read (``<data dir>/clickhouse/url``, 0600). The shipper writes
through chDB in-process, never through here. Every statement passes the ``guard`` (ClickHouse's own
parser: one read, no table function that reaches files, URLs or other databases, no ``SETTINGS`` or
``INTO OUTFILE``) and runs with ``readonly=1`` and bounds on time, memory and result size. A body over
``MAX_BODY`` is refused before it is read."""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from backend.src.analytics.guard import ReadGuard, Refused
from backend.src.analytics.store import ChdbStore, StoreError

log = logging.getLogger(__name__)
READS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS")
USER = "levibot"
MAX_BODY = 1024 * 1024
LIMITS = ("max_execution_time=30, max_memory_usage=2000000000, max_result_bytes=200000000, "
          "result_overflow_mode='throw', readonly=1")  # readonly last: after it nothing may be set
FORMATS = frozenset({"TabSeparated", "TabSeparatedWithNames", "TSV", "TSVWithNames", "JSONEachRow", "JSON",
                     "JSONCompact", "CSV", "CSVWithNames", "Pretty", "PrettyCompact", "Values"})


def is_read(sql: str) -> bool:
    """One read statement (``SELECT``/``WITH``/``SHOW``/``DESCRIBE``/``EXISTS``), nothing after it."""
    text = sql.strip().rstrip(";").strip()
    words = text.split(None, 1)
    return bool(words) and words[0].upper() in READS and ";" not in text


def new_password() -> str:
    return secrets.token_urlsafe(32)


class StoreServer:
    def __init__(self, store: ChdbStore, password: str, host: str = "127.0.0.1", port: int = 0) -> None:
        outer = self
        self.store, self.password = store, password
        self.guard = ReadGuard(store.explain, store.table_functions())

        class Handler(BaseHTTPRequestHandler):
            timeout = 10.0  # a client that stops sending its request is dropped

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if urlsplit(self.path).path == "/ping":
                    outer.reply(self, 200, "Ok.\n")
                else:
                    outer.run(self, post=False)

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                outer.run(self, post=True)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://{USER}:{password}@{host}:{self.port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="store-http", daemon=True)

    def start(self) -> StoreServer:
        self.thread.start()
        return self

    @staticmethod
    def reply(h: BaseHTTPRequestHandler, code: int, text: str) -> None:
        body = text.encode()
        try:
            h.send_response(code)
            h.send_header("Content-Type", "text/plain; charset=UTF-8")
            h.send_header("Content-Length", str(len(body)))
            if code == 401:
                h.send_header("WWW-Authenticate", 'Basic realm="levibot analytics"')
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            pass  # the client went away

    def authorized(self, h: BaseHTTPRequestHandler) -> bool:
        user, key = h.headers.get("X-ClickHouse-User"), h.headers.get("X-ClickHouse-Key")
        auth = h.headers.get("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "basic":
            try:
                user, _, key = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
        return (user or "") == USER and hmac.compare_digest((key or "").encode(), self.password.encode())

    def run(self, h: BaseHTTPRequestHandler, *, post: bool) -> None:
        if not self.authorized(h):  # before the body is read
            self.reply(h, 401, "Code: 516. DB::Exception: levibot: Authentication failed. (AUTHENTICATION_FAILED)")
            return
        try:
            length = int(h.headers.get("Content-Length") or 0) if post else 0
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY or h.headers.get("Transfer-Encoding"):
            self.reply(h, 413, f"Code: 1. DB::Exception: the query must come with a Content-Length of at most "
                               f"{MAX_BODY} bytes. (BAD_ARGUMENTS)")
            h.close_connection = True
            return
        try:
            body = h.rfile.read(length).decode() if length else ""
        except (OSError, UnicodeDecodeError):
            self.reply(h, 400, "Code: 1. DB::Exception: the query is not UTF-8 text. (BAD_ARGUMENTS)")
            return
        params = parse_qs(urlsplit(h.path).query)
        sql = "\n".join([*params.get("query", []), body] if body else params.get("query", []))
        if not is_read(sql):
            self.reply(h, 403, "Code: 164. DB::Exception: readonly: only a read query is allowed here. (READONLY)")
            return
        try:
            checked = self.guard.check(sql)
        except Refused as exc:
            self.reply(h, 403, f"Code: 164. DB::Exception: {exc}. (READONLY)")
            return
        except StoreError as exc:
            self.reply(h, 400, str(exc))
            return
        fmt = checked.fmt or params.get("default_format", ["TabSeparated"])[0]
        if fmt not in FORMATS:
            self.reply(h, 400, f"Code: 73. DB::Exception: format {fmt[:40]} is not served here. (UNKNOWN_FORMAT)")
            return
        try:
            self.reply(h, 200, self.store.execute(f"{checked.sql}\nSETTINGS {LIMITS}", fmt=fmt))
        except StoreError as exc:
            self.reply(h, 500, str(exc))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
