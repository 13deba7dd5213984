"""The embedded store's HTTP face: ClickHouse's HTTP interface on loopback, served by the analytics
process that owns the chDB directory (``POST /`` with the query in the body, or ``?query=``; a
non-200 with the exception text on error; ``GET /ping`` answers ``Ok.``). ``readonly=1`` refuses
anything but a read, as ClickHouse does."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from backend.src.analytics.store import Store, StoreError

log = logging.getLogger(__name__)
READS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS")


def is_read(sql: str) -> bool:
    """One read statement (``SELECT``/``WITH``/``SHOW``/``DESCRIBE``/``EXISTS``), nothing after it."""
    text = sql.strip().rstrip(";").strip()
    words = text.split(None, 1)
    return bool(words) and words[0].upper() in READS and ";" not in text


class StoreServer:
    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 0) -> None:
        outer = self
        self.store = store

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if urlsplit(self.path).path == "/ping":
                    outer.reply(self, 200, "Ok.\n")
                else:
                    outer.run(self, b"", readonly=True)

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                outer.run(self, self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}/"
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
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            pass  # the client went away

    def run(self, h: BaseHTTPRequestHandler, body: bytes, readonly: bool = False) -> None:
        params = parse_qs(urlsplit(h.path).query)
        sql = " ".join(params.get("query", [])) + ("\n" if params.get("query") and body else "") + body.decode()
        if (readonly or params.get("readonly", ["0"])[0] != "0") and not is_read(sql):
            self.reply(h, 403, "Code: 164. DB::Exception: readonly: only a read query is allowed here. (READONLY)")
            return
        try:
            self.reply(h, 200, self.store.execute(sql))
        except StoreError as exc:
            self.reply(h, 500, str(exc))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
