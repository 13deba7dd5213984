"""The risk policy in Redis: the manager publishes it, engines hot-reload it with their heartbeat."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import redis

from backend.risk.policy import RiskPolicy, load_policy
from backend.src.core.errors import UsageError
from backend.src.core.keys import Keys

log = logging.getLogger(__name__)


def publish_json(r: redis.Redis, key: str, payload: str) -> bool:
    """Store ``payload`` under ``key`` and bump its version, unless it is unchanged."""
    if r.hget(key, "json") == payload:
        return False
    pipe = r.pipeline(transaction=True)
    pipe.hset(key, "json", payload)
    pipe.hincrby(key, "version", 1)
    pipe.execute()
    return True


def publish_policy(r: redis.Redis, keys: Keys, policy: RiskPolicy) -> bool:
    return publish_json(r, keys.risk_policy, json.dumps(policy.model_dump(mode="json"), sort_keys=True))


class PolicyWatcher:
    """Re-reads the policy file when it changes; a bad file is refused, the last good one stays."""

    def __init__(self, r: redis.Redis, keys: Keys, path: Path) -> None:
        self.r, self.keys, self.path = r, keys, path
        self.fingerprint = self._fp()

    def _fp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def changed(self) -> bool:
        fp = self._fp()
        if fp == self.fingerprint:
            return False
        self.fingerprint = fp
        return True

    def reload(self) -> str:
        try:
            policy = load_policy(self.path)
        except UsageError as exc:
            log.error("risk policy rejected, previous policy stays in force: %s", exc, extra={"alert": True})
            self.r.xadd(self.keys.events, {"type": "config_rejected", "symbol": "", "reason": str(exc),
                                           "ts": f"{time.time():.3f}"}, maxlen=10_000, approximate=True)
            raise
        changed = publish_policy(self.r, self.keys, policy)
        return "risk policy applied" if changed else "risk policy unchanged"
