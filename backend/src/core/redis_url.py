"""One way to open Redis from ``LEVIBOT_REDIS_URL``, for every process: plain or Sentinel.

* ``redis://[:password@]host:port/db`` (also ``rediss://``, ``unix://``): one server.
* ``redis+sentinel://[:password@]host:26379,host2:26379/<service>/<db>``: ask the sentinels which
  server is the primary of ``<service>`` and follow it through a failover (redis-py's
  ``SentinelConnectionPool`` asks again whenever a connection to the old primary fails). The
  password is the data servers'; sentinels that want their own take ``?sentinel_password=...``.

No client retries by itself: our loops retry on their own schedule, so a call fails fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

# redis-py 8 defaults to 5 s socket timeouts: far too slow for 1 s heartbeats.
SOCKET_TIMEOUT_S = 1.0
SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelUrl:
    hosts: tuple[tuple[str, int], ...]
    service: str
    db: int
    password: str | None
    sentinel_password: str | None


def parse_sentinel(url: str) -> SentinelUrl | None:
    """The parts of a ``redis+sentinel://`` URL (ValueError naming what is wrong); None for other URLs."""
    if not url.startswith(f"{SENTINEL_SCHEME}://"):
        return None
    rest = url[len(SENTINEL_SCHEME) + 3:]
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    password = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        password = unquote(auth.partition(":")[2]) or None
    hosts = []
    for part in netloc.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"sentinel address {part.strip() or '(empty)'!r} is not host:port")
        hosts.append((host.strip("[]"), int(port)))
    segments = [s for s in path.split("/") if s]
    if not segments or len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
        raise ValueError("a sentinel URL ends in /<service name>/<db>, e.g. redis+sentinel://h:26379/mymaster/0")
    sentinel_password = parse_qs(query).get("sentinel_password", [None])[0]
    return SentinelUrl(tuple(hosts), unquote(segments[0]), int(segments[1]) if len(segments) == 2 else 0,
                       password, sentinel_password)


def check_url(url: str) -> str:
    """Validate a Redis URL without connecting (ValueError with the reason)."""
    if parse_sentinel(url) is None:
        scheme = urlsplit(url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"scheme {scheme or '(none)'!r}: use redis://, rediss://, unix:// or redis+sentinel://")
    return url


def connect(url: str, *, timeout: float | None = SOCKET_TIMEOUT_S, connect_timeout: float | None = None,
            decode: bool = True) -> redis.Redis:
    """A client with short timeouts and no hidden retries (not yet pinged). ``timeout=None`` for
    blocking commands (an RQ worker's BLPOP); ``decode=False`` for RQ, which reads bytes."""
    opts = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout or timeout,
            "health_check_interval": 0, "decode_responses": decode, "retry": Retry(NoBackoff(), 0)}
    s = parse_sentinel(url)
    if s is None:
        return redis.Redis.from_url(url, **opts)  # type: ignore[arg-type]
    sentinel = Sentinel(list(s.hosts), sentinel_kwargs=sentinel_options(s, connect_timeout or timeout or 1.0),  # type: ignore[no-untyped-call]
                        password=s.password, db=s.db, **opts)
    client: redis.Redis = sentinel.master_for(s.service)  # type: ignore[no-untyped-call]
    return client


def connect_async(url: str, *, timeout: float = SOCKET_TIMEOUT_S, connect_timeout: float | None = None,
                  max_connections: int | None = None) -> aioredis.Redis:
    """The asyncio client for the API and the Telegram bot (decoded strings)."""
    opts: dict[str, object] = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout or timeout,
                               "decode_responses": True}
    if max_connections is not None:
        opts["max_connections"] = max_connections
    s = parse_sentinel(url)
    if s is None:
        return aioredis.Redis.from_url(url, **opts)  # type: ignore[arg-type]
    opts.pop("max_connections", None)
    sentinel = AsyncSentinel(list(s.hosts), sentinel_kwargs=sentinel_options(s, connect_timeout or timeout),  # type: ignore[no-untyped-call]
                             password=s.password, db=s.db, **opts)
    client: aioredis.Redis = sentinel.master_for(s.service)
    return client


def sentinel_options(s: SentinelUrl, timeout: float) -> dict[str, object]:
    out: dict[str, object] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                              "decode_responses": True}
    if s.sentinel_password:
        out["password"] = s.sentinel_password
    return out


def redact(url: str) -> str:
    """The URL without its passwords (never log secrets)."""
    base, _, query = url.partition("?")
    if "@" in base:
        scheme, _, rest = base.partition("://")
        base = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    if "sentinel_password" in query:
        query = "sentinel_password=***"
    return f"{base}?{query}" if query else base
