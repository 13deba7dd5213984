"""The coordination plane's settings (part of ``Settings``): Redis, the pool, the journal's Redis copy."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class RedisSettings(BaseModel):
    """Coordination plane. ``redis_url`` unset: the manager starts an embedded redis-server."""

    redis_url: str | None = None
    namespace: str = Field(default="levibot:", min_length=1)
    embedded_redis_port: int = Field(default=0, ge=0, le=65535)  # 0: pick a free port
    # A symbol pool shared by several managers (``--pool``): claims, fair share, failover.
    pool: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # Every journal entry also to a per-symbol Redis stream (always in a pool: ``streams_journal``).
    journal_stream: bool = False
    # Replicas that must hold a journal entry before the engine acts on it (Redis WAIT);
    # unset: 1 with a Sentinel URL (a failover must not lose it), else 0.
    journal_wait_replicas: int | None = Field(default=None, ge=0, le=16)
    journal_wait_ms: int = Field(default=200, ge=1, le=60_000)

    @field_validator("namespace")
    @classmethod
    def _namespace_ends_with_colon(cls, v: str) -> str:
        return v if v.endswith(":") else v + ":"

    @field_validator("redis_url")
    @classmethod
    def _redis_url_valid(cls, v: str | None) -> str | None:
        from backend.src.core.redis_url import check_url  # noqa: PLC0415 - keeps redis out of settings' imports

        return check_url(v) if v else None  # empty: unset, as an empty variable in a compose file means

    @property
    def streams_journal(self) -> bool:
        """Always in a pool: a takeover on another host rebuilds the journal from Redis."""
        return self.journal_stream or self.pool is not None

    @property
    def wait_replicas(self) -> int:
        if self.journal_wait_replicas is not None:
            return self.journal_wait_replicas
        from backend.src.core.redis_url import parse_sentinel  # noqa: PLC0415 - as in the validator

        return 1 if self.redis_url and parse_sentinel(self.redis_url) else 0
