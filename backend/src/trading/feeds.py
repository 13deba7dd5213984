"""Outside data an engine's strategy sees with each candle, read from the caches the RQ workers fill:

- ``news_score``: the symbol's decayed news-sentiment aggregate (``sentiment:<SYMBOL>``);
- ``funding_rate``, ``onchain_netflow`` (exchange inflow − outflow, USD),
  ``onchain_active_addresses``, ``onchain_whale_transactions`` (``onchain:<SYMBOL>``).

Each is given only while fresh (older than its ``max_age_s``: left out) and never when Redis does
not answer: a strategy sees a missing feed as unknown, never as zero.

And the signals from outside a ``webhook`` engine trades (``SignalFeed``: the API's signal stream).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis

from backend.src.core.keys import Keys


class CacheReader:
    """One Redis cache of one symbol, read on every candle; values older than ``max_age_s`` are left out."""

    def __init__(self, r: redis.Redis, keys: Keys, symbol: str, max_age_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.r, self.keys, self.symbol, self.max_age_s, self.clock = r, keys, symbol, max_age_s, clock


class SentimentReader(CacheReader):
    """The symbol's news aggregate as the ``news_score`` feature."""

    def __call__(self) -> dict[str, float]:
        try:
            raw = self.r.hgetall(self.keys.sentiment(self.symbol))
        except redis.RedisError:
            return {}
        try:
            if not raw or float(raw["count"]) == 0 or self.clock() - float(raw["updated_at"]) > self.max_age_s:
                return {}
            return {"news_score": float(raw["decayed"])}
        except (KeyError, ValueError):
            return {}


class OnchainReader(CacheReader):
    """The on-chain metrics (Dune) and the funding rate the on-chain job cached, while fresh."""

    def __call__(self) -> dict[str, float]:
        try:
            raw = self.r.hgetall(self.keys.onchain(self.symbol))
            cached = {str(k): json.loads(v) for k, v in raw.items()}
        except (redis.RedisError, ValueError):
            return {}
        now, out = self.clock(), {}

        def fresh(stamp: str) -> bool:
            at = cached.get(stamp)
            return isinstance(at, int | float) and now - float(at) <= self.max_age_s

        def num(name: str) -> float | None:
            v = cached.get(name)
            return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

        if fresh("funding_at") and (rate := num("funding_rate")) is not None:
            out["funding_rate"] = rate
        if fresh("dune_at"):
            inflow, outflow = num("exchange_inflow_usd"), num("exchange_outflow_usd")
            if inflow is not None and outflow is not None:
                out["onchain_netflow"] = inflow - outflow
            for src, dst in (("active_addresses_24h", "onchain_active_addresses"),
                             ("whale_transactions_count", "onchain_whale_transactions")):
                if (v := num(src)) is not None:
                    out[dst] = v
        return out


class FeedReader:
    """Every feed of one symbol, merged."""

    def __init__(self, *readers: Callable[[], dict[str, float]]) -> None:
        self.readers = readers

    def __call__(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for read in self.readers:
            out.update(read())
        return out


@dataclass(frozen=True)
class OutsideSignal:
    """One signal the API took for the symbol (``app/signals_api.py``), as its stream holds it."""

    stream_id: str
    sender: str  # the signal source's name (the stream's ``source``; "source" in a journal names the candle feed)
    id: str
    target: float
    ts: float
    expires_at: float | None
    received_at: float
    reason: str = ""

    @classmethod
    def of(cls, stream_id: str, f: dict[str, Any]) -> OutsideSignal:
        return cls(str(stream_id), str(f["source"]), str(f["id"]), float(f["target"]), float(f["ts"]),
                   float(f["expires_at"]) if f.get("expires_at") not in (None, "") else None,
                   float(f["received_at"]), str(f.get("reason", "")))

    def entry(self) -> dict[str, Any]:
        """The journal entry (``webhook_signal``)."""
        return {"type": "webhook_signal", **asdict(self)}


class SignalFeed:
    """A ``webhook`` engine's signals: the symbol's stream read from the last one journaled, so a restart
    resumes where the journal ends (nothing taken twice, nothing skipped while the stream holds it)."""

    def __init__(self, r: redis.Redis, keys: Keys, symbol: str, clock: Callable[[], float] = time.time) -> None:
        self.r, self.key, self.clock = r, keys.signals(symbol), clock
        self.last_id = "0-0"
        self.latest: OutsideSignal | None = None

    def resume(self, journaled: list[dict[str, Any]]) -> None:
        if journaled:
            e = journaled[-1]
            self.latest = OutsideSignal(**{k: e[k] for k in OutsideSignal.__dataclass_fields__})
            self.last_id = self.latest.stream_id

    def poll(self) -> list[OutsideSignal]:
        """Signals taken since the last poll, oldest first ([] while Redis does not answer)."""
        try:
            rows = self.r.xrange(self.key, min=f"({self.last_id}", count=100_000)
        except redis.RedisError:
            return []
        out = []
        for sid, fields in rows:  # type: ignore[union-attr]
            self.last_id = str(sid)  # past an entry that is not ours too: it is never read again
            try:
                out.append(OutsideSignal.of(str(sid), {str(k): v for k, v in fields.items()}))  # type: ignore[union-attr]
            except (KeyError, ValueError):
                continue  # the API writes every field; anything else in the stream is not ours
        if out:
            self.latest = out[-1]
        return out

    def now(self) -> float:
        return self.clock()
