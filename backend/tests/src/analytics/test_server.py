"""The embedded store's HTTP face serves reads only, only with this start's password, and never anything
that reaches outside the store; the attacks of a hostile local user, run as one (``nobody``), all fail."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.src.analytics.guard import ReadGuard, Refused
from backend.src.analytics.server import MAX_BODY, USER, StoreServer, new_password
from backend.src.analytics.store import ChdbStore, HttpStore, StoreError, url_file
from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.settings import REPO_ROOT, Settings
from backend.tests.conftest import require_binary


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    store = ChdbStore(tmp_path_factory.mktemp("guard") / "db")
    store.execute("CREATE TABLE IF NOT EXISTS events (ts Int64, kind String) ENGINE = MergeTree ORDER BY ts")
    store.execute("INSERT INTO events VALUES (1, 'crashed'), (2, 'recovered')")
    yield store
    store.close()


@pytest.fixture(scope="module")
def served(chdb: ChdbStore) -> Iterator[StoreServer]:
    server = StoreServer(chdb, new_password()).start()
    yield server
    server.stop()


REFUSED = [
    "SELECT * FROM file('/etc/hostname', 'LineAsString')",
    "SELECT * FROM `file`('/etc/hostname', 'LineAsString')",
    "select * from FILE('/etc/hostname', 'LineAsString')",
    "SELECT * FROM /* a comment */ file('/etc/hostname', 'LineAsString')",
    "SELECT count() FROM events WHERE ts IN "
    "(SELECT toInt64(1) FROM url('http://127.0.0.1:9/', 'LineAsString', 'x String'))",
    "SELECT * FROM events JOIN remote('127.0.0.1', system.one) AS o ON 1",
    "SELECT * FROM python('x')",
    "SELECT * FROM filesystem('/')",
    "SELECT * FROM s3('http://127.0.0.1:9/x', 'CSV')",
    "WITH t AS (SELECT * FROM file('/etc/hostname', 'LineAsString')) SELECT * FROM t",
    "DESCRIBE TABLE file('/etc/hostname', 'LineAsString')",
    "SELECT 'x' INTO OUTFILE '/tmp/levibot-outfile-attack'",
    "SELECT * FROM file('/etc/hostname', 'LineAsString') SETTINGS readonly = 1, readonly = 0",
    "SELECT 1 SETTINGS max_execution_time = 0",
    "SELECT * FROM (SELECT 1 SETTINGS readonly = 0)",
    "SELECT 1 FORMAT TSV INTO OUTFILE '/tmp/levibot-outfile-attack'",
    "SELECT 1 INTO /* hidden */ outFile '/tmp/levibot-outfile-attack' FORMAT TSV",
    "INSERT INTO FUNCTION file('/tmp/levibot-insert-attack', 'LineAsString') SELECT 'x'",
    "INSERT INTO events VALUES (3, 'forged')",
    "SELECT 1; INSERT INTO events VALUES (3, 'forged')",
    "DROP TABLE events",
    "SELECT * FROM view(SELECT 1)",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_the_guard_refuses_what_reaches_outside_the_store(chdb: ChdbStore, served: StoreServer, sql: str) -> None:
    client = HttpStore(served.url)
    try:
        with pytest.raises(StoreError, match="READONLY|not allowed|only a read"):
            client.execute(sql)
    finally:
        client.close()
    assert chdb.execute("SELECT count() FROM events") == "2\n", "nothing was written"
    assert not Path("/tmp/levibot-outfile-attack").exists() and not Path("/tmp/levibot-insert-attack").exists()


@pytest.mark.parametrize(("sql", "out"), [
    ("SELECT count() AS n FROM events FORMAT JSONEachRow", '{"n":2}\n'),
    ("select kind from events where ts = 2", "recovered\n"),
    ("WITH x AS (SELECT 1 AS a) SELECT a FROM x", "1\n"),
    ("SELECT number FROM numbers(2)", "0\n1\n"),
    ("SELECT format('{}-{}', 'a', 'b')", "a-b\n"),  # format is also a string function
    ("SELECT 1 -- a trailing comment", "1\n"),
    ("SELECT ';' AS s", None),  # a ';' even in a literal: one statement only, refused
    ("EXISTS TABLE events", "1\n"),
    ("SHOW TABLES", "events\n"),
])
def test_reads_are_served(served: StoreServer, sql: str, out: str | None) -> None:
    client = HttpStore(served.url)
    try:
        if out is None:
            with pytest.raises(StoreError, match="READONLY"):
                client.execute(sql)
        else:
            assert client.execute(sql) == out
    finally:
        client.close()


def test_every_request_needs_this_starts_password(served: StoreServer) -> None:
    base = f"http://127.0.0.1:{served.port}/"
    for auth in [None, (USER, "guess"), ("default", ""), ("default", served.password)]:
        res = httpx.post(base, content=b"SELECT 1", auth=auth)
        assert res.status_code == 401 and "AUTHENTICATION_FAILED" in res.text
    assert httpx.get(base, params={"query": "SELECT 1"}).status_code == 401
    ok = httpx.post(base, content=b"SELECT 1", headers={"X-ClickHouse-User": USER, "X-ClickHouse-Key": served.password})
    assert ok.status_code == 200 and ok.text == "1\n"
    assert httpx.get(base + "ping").text == "Ok.\n"  # liveness, no data


def test_a_body_is_bounded_before_it_is_read(served: StoreServer) -> None:
    base = f"http://127.0.0.1:{served.port}/"
    auth = (USER, served.password)
    big = httpx.post(base, content=b"SELECT 1 " + b" " * MAX_BODY, auth=auth)
    assert big.status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b"SELECT 1"

    assert httpx.post(base, content=chunks(), auth=auth).status_code == 413  # chunked: no length to bound


def test_the_guard_needs_no_server() -> None:
    """The guard reads the parser's tree; the parser is what decides, so a tree it cannot parse is refused."""
    guard = ReadGuard(lambda sql: "SelectWithUnionQuery (children 1)\n ExpressionList\n  Function file\n",
                      frozenset({"file"}))
    with pytest.raises(Refused, match="file"):
        guard.check("SELECT 1")
    with pytest.raises(Refused, match="longer than"):
        guard.check("SELECT " + "1" * 300_000)


# ---------------------------------------------------------------------------- a hostile local user

def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    return subprocess.run([*prefix, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", *argv],  # noqa: S603
                          capture_output=True, text=True, timeout=30, check=False)


def can_drop_privileges() -> bool:
    if shutil.which("setpriv") is None:
        return False
    return as_nobody("true").returncode == 0


@pytest.fixture
def open_data_dir() -> Iterator[Path]:
    """A data dir any user can traverse (a checkout's ``backend/data`` under umask 022): only what the
    analytics process itself sets protects its files."""
    root = Path(tempfile.mkdtemp(prefix="levibot-attack-"))
    root.chmod(0o755)
    data = root / "data"
    data.mkdir(mode=0o755)
    yield data
    shutil.rmtree(root, ignore_errors=True)


def test_a_local_user_gets_nothing_from_a_running_store(redis_server: EmbeddedRedis, ns: str,
                                                         open_data_dir: Path) -> None:
    if not can_drop_privileges():
        if os.environ.get("LEVIBOT_TEST_STRICT"):
            pytest.fail("setpriv (util-linux) and root or passwordless sudo are needed to act as another user")
        pytest.skip("cannot act as another user here")
    require_binary("curl", "curl")
    settings = Settings(data_dir=open_data_dir, redis_url=redis_server.url, namespace=ns)  # type: ignore[arg-type]
    env = {**os.environ, **settings.child_env(frozenset())}
    proc = subprocess.Popen([sys.executable, "-m", "backend.src.analytics", "serve"], cwd=REPO_ROOT, env=env,  # noqa: S603
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not url_file(settings).exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        url = url_file(settings).read_text().strip()
        store = HttpStore(url)
        deadline = time.monotonic() + 60
        while "events" not in store.execute("SHOW TABLES"):  # migrated: the tables exist
            assert time.monotonic() < deadline
            time.sleep(0.2)
        before = store.execute("SELECT count() FROM events")
        port = url.rsplit(":", 1)[1].strip("/")
        assert stat.S_IMODE(url_file(settings).stat().st_mode) == 0o600
        assert stat.S_IMODE(url_file(settings).parent.stat().st_mode) == 0o700

        # 1. the URL (and the password in it) cannot be read
        read = as_nobody("cat", str(url_file(settings)))
        assert read.returncode != 0 and "Permission denied" in read.stderr
        # 2. the port is found (ss, /proc/net/tcp): without the password every query is refused
        target = tempfile.mktemp(prefix="levibot-attack-")  # noqa: S306 - a name that must never come to exist
        for sql in ["SELECT * FROM file('/etc/shadow', 'LineAsString')",
                    f"SELECT * FROM file('{settings.data_dir}/redis/password', 'LineAsString')",
                    f"INSERT INTO FUNCTION file('{target}', 'LineAsString') SELECT 'x'",
                    "INSERT INTO events (ms, n, type, symbol) VALUES (1, 1, 'forged', 'BTCUSDT')"]:
            res = as_nobody("curl", "-s", "-w", "\n%{http_code}", f"http://127.0.0.1:{port}/", "--data-binary", sql)
            assert res.stdout.rstrip().endswith("401"), (sql, res.stdout)
            assert "root:" not in res.stdout
        # 3. the credentials' files are the owner's only
        for secret in [settings.data_dir / "clickhouse" / "url"]:
            assert as_nobody("cat", str(secret)).returncode != 0
        assert not Path(target).exists()
        assert store.execute("SELECT count() FROM events") == before, "no row went in"
        store.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert not url_file(settings).exists(), "the URL goes with the process"


# ---------------------------------------------------------------------------- a ClickHouse server

def test_a_server_is_read_as_its_read_only_user(tmp_path: Path) -> None:
    """Clients (the API, the bot, the CLI) read as ``clickhouse_read_url``'s user, or as the writer with
    ``readonly=1`` on every statement; the server refuses their writes and any lifting of ``readonly``."""
    from backend.src.analytics import schema
    from backend.src.analytics.store import connect
    from backend.tests.clickhouse_server import ClickHouseServer

    server = ClickHouseServer(require_binary("clickhouse-server", "clickhouse-server"), tmp_path / "chs").start()
    try:
        writer = HttpStore(server.url())
        writer.ensure_database()
        schema.migrate(writer)
        forged = "INSERT INTO events (ms, n, type, symbol) VALUES (1, 1, 'forged', 'BTCUSDT')"
        for read_url in [server.read_url(), None]:
            settings = Settings(data_dir=tmp_path / "data", clickhouse_url=server.url(),  # type: ignore[call-arg]
                                clickhouse_read_url=read_url)
            reader = connect(settings)
            try:
                assert reader.execute("SELECT count() FROM events") == "0\n"
                for sql in [forged, "DROP TABLE events", "SELECT 1 SETTINGS readonly = 0"]:
                    with pytest.raises(StoreError, match="readonly|READONLY|Code: 164"):
                        reader.execute(sql)
            finally:
                reader.close()
        assert writer.execute("SELECT count() FROM events") == "0\n"
        writer.close()
    finally:
        server.stop()
