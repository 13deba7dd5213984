"""Container health checks: ``python -m backend.scripts.healthcheck api|registry|redis``.

``api``: ``GET /health`` on the local API answers 200. ``registry``: the manager's registry
mirror is fresh (< 10 s) and at least one engine runs (in a pool, ``LEVIBOT_POOL``, fresh is enough).
``redis``: Redis answers PING.
Exit 0 healthy, 1 not.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request

from backend.src.core.redis_launcher import discover_url
from backend.src.core.redis_url import connect
from backend.src.core.settings import Settings


def check(kind: str, settings: Settings) -> str | None:
    """None when healthy, else why not."""
    if kind == "api":
        url = f"http://127.0.0.1:{settings.api_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - fixed loopback URL
                return None if resp.status == 200 else f"{url}: HTTP {resp.status}"
        except OSError as exc:
            return f"{url}: {exc}"
    if kind == "registry":
        path = settings.registry_path
        try:
            age = time.time() - path.stat().st_mtime
            engines = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            return f"{path}: {exc}"
        if age > 10:
            return f"{path} is {age:.0f}s old"
        if settings.pool is not None:
            return None  # a pool member may rightly run nothing (more managers than symbols)
        return None if any(v.get("status") == "running" for v in engines.values()) else "no engine running"
    try:
        connect(discover_url(settings), timeout=3.0).ping()
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy"
        return f"redis: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("api", "registry", "redis"):
        print("usage: python -m backend.scripts.healthcheck api|registry|redis", file=sys.stderr)
        return 2
    problem = check(args[0], Settings())
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
