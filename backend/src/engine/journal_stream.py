"""The journal's copy in Redis: what lets another host take a symbol over.

Every entry the engine writes to its fsynced file is also appended, in order and with its
generation, to the symbol's stream (``journal:<SYMBOL>``) before the engine acts on it:

* **Fenced**: one Lua call renews the lease (as the heartbeat does) and appends only if this
  engine still holds it, so an engine that was taken over cannot add a line.
* **Exactly once**: the entry's ``seq`` is its stream id (``<seq>-1``); an entry already there
  is skipped, so a retry after a timeout never doubles it.
* **Replicated** (``LEVIBOT_JOURNAL_WAIT_REPLICAS``, 1 with Sentinel): ``WAIT n`` must confirm the
  entry reached a replica; until it does, the entry stays pending and is sent again (a failover
  that lost it gets it back; one that kept it skips it).
* **Through an outage**: pending entries are kept in memory and flushed in order with the next
  append or heartbeat; the local file remains the record of truth meanwhile.

On start, ``restore`` makes the local file agree with the stream: entries the stream has beyond
the file are appended to it (a takeover); where the two differ, the side with the newer generation
wins (a losing file is kept aside, a losing stream is written anew from the file); local entries the stream
lacks are queued for it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, cast

import redis

from backend.src.core.errors import LeaseError, RedisUnavailable
from backend.src.core.keys import Keys
from backend.src.core.lease import _RENEW_BODY, Lease
from backend.src.core.settings import Settings
from backend.src.engine.journal import FileJournal, encode

log = logging.getLogger(__name__)
BATCH = 500

# KEYS: lease, generation, stream. ARGV: token, ttl_ms, generation, then seq, entry json, seq, json, ...
# Returns -1 when the lease is not ours, else how many entries were added.
APPEND = _RENEW_BODY + """
if not held then return -1 end
local last = 0
local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if #top > 0 then last = tonumber(string.match(top[1][1], '^(%d+)-')) end
local added = 0
for i = 4, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  if seq > last then
    redis.call('XADD', KEYS[3], seq .. '-1', 'e', ARGV[i + 1])
    last = seq
    added = added + 1
  end
end
return added
"""


class StreamAhead(RuntimeError):
    """The stream grew between the restore and our lease: restart and restore again."""


class JournalStream:
    def __init__(self, r: redis.Redis, keys: Keys, symbol: str, lease: Lease, *, replicas: int = 0,
                 wait_ms: int = 200) -> None:
        self.r, self.key, self.lease = r, keys.journal(symbol), lease
        self.gen_key = keys.generation(symbol)
        self.replicas, self.wait_ms = replicas, wait_ms
        self.pending: list[dict[str, Any]] = []
        self.restored_seq = -1  # the stream's last seq when restored; -1: not read
        self.replace = False  # the stream holds an older generation's history: rewritten from the local file
        self.warned = ""

    # ------------------------------------------------------------------ start

    def xrange(self, start: str, count: int | None = None) -> list[tuple[str, dict[str, str]]]:
        return cast("list[tuple[str, dict[str, str]]]", self.r.xrange(self.key, start, "+", count=count) or [])

    def read(self, start: str = "-") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            chunk = self.xrange(start, 1000)
            out += [json.loads(fields["e"]) for _, fields in chunk]
            if len(chunk) < 1000:
                return out
            start = f"({chunk[-1][0]}"

    def read_after(self, journal: FileJournal) -> tuple[int, list[dict[str, Any]]]:
        """The stream as a list, and how many of its first entries are known to equal the local journal's.
        When its entry at the local journal's last seq is that very entry, the two agree up to there (one
        generation writes each entry, after a prefix it had restored or written itself), so only what follows
        is read: a restart reads a few entries, not the symbol's history."""
        local = journal.entries
        if local and int(local[-1]["seq"]) == len(local):
            at = self.xrange(f"{len(local)}-1", 1)
            if at and at[0][0] == f"{len(local)}-1" and json.loads(at[0][1]["e"]) == local[-1]:
                return len(local), local + self.read(f"({len(local)}-1")
        return 0, self.read()

    def restore(self, journal: FileJournal, wait_s: float = 0.0) -> FileJournal:
        """Bring the local file in line with the stream (before the journal is read). Redis must answer
        within ``wait_s``: an engine that cannot see the stream may hold a stale journal (another host
        may have traded the symbol since), so it does not start (RedisUnavailable: restarted later)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                agreed, stream = self.read_after(journal)
                break
            except redis.RedisError as exc:
                if time.monotonic() > deadline:
                    journal.close()
                    raise RedisUnavailable(f"journal stream {self.key} unreadable: {exc}") from exc
                time.sleep(0.2)
        self.restored_seq = int(stream[-1]["seq"]) if stream else 0
        local = journal.entries
        both = min(len(local), len(stream))
        same = next((i for i in range(agreed, both) if local[i] != stream[i]), both)
        if same < len(local) and same < len(stream) and int(stream[same]["gen"]) > int(local[same]["gen"]):
            journal = self.set_aside(journal)  # the stream's history is the newer generation's
            same = 0
        elif same < len(local) and same < len(stream):  # the local file is the newer one: it goes up
            log.warning("journal stream differs from the local journal at seq %s; the local (newer) one is kept",
                        local[same].get("seq"))
            self.replace = True  # a stream's ids cannot go back below its top: it is written anew, all of it
            self.pending = list(local)
            return journal
        if len(stream) > same:
            journal.adopt(stream[same:])
            log.info("journal rebuilt from the stream", extra={"entries": len(stream) - same,
                                                                "seq": journal.seq})
        elif len(local) > same:
            self.pending = list(local[same:])  # written while Redis was away: the stream gets them now
        return journal

    @staticmethod
    def set_aside(journal: FileJournal) -> FileJournal:
        path = journal.path
        aside = path.with_name(f"{path.name}.superseded-{int(time.time())}")
        log.warning("local journal superseded by a newer generation's stream; kept as %s", aside.name)
        os.replace(path, aside)  # still flocked by us: no other engine of this host opens either
        fresh = FileJournal(path)
        journal.close()
        return fresh

    def after_lease(self, journal: FileJournal) -> None:
        """Our generation now owns the symbol: nobody else can append. Refuse to trade on a stale copy."""
        if self.restored_seq < 0:
            return
        try:
            top = self.r.xrevrange(self.key, "+", "-", count=1)
        except redis.RedisError:
            return
        last = int(str(top[0][0]).split("-")[0]) if top else 0  # type: ignore[index]
        if last > max(journal.seq, self.restored_seq):
            raise StreamAhead(f"journal stream reached seq {last} after the restore (local {journal.seq}); "
                              "restarting to restore again")
        if self.replace:
            self.r.delete(self.key)  # under our lease: no other engine appends or restores meanwhile
        self.flush()

    # ------------------------------------------------------------------ appends

    def append(self, entry: dict[str, Any]) -> None:
        self.pending.append(entry)
        self.flush()

    def flush(self) -> None:
        """Send pending entries (fenced, idempotent); keep them until a replica holds them."""
        while self.pending:
            batch = self.pending[:BATCH]
            args: list[str | int] = []
            for e in batch:
                args += [int(e["seq"]), encode(e)]
            lease_key, token, ttl_ms, gen = self.lease.renew_args()
            try:
                added = int(self.r.eval(APPEND, 3, lease_key, self.gen_key, self.key,  # type: ignore[arg-type]
                                        token, ttl_ms, gen, *args))
                if added < 0:
                    raise LeaseError(f"journal stream: lease of generation {gen} lost; stopping")
                if self.replicas and int(self.r.wait(self.replicas, self.wait_ms)) < self.replicas:
                    self.warn("replica", f"journal entries not yet on {self.replicas} replica(s); kept to send again")
                    return
            except redis.RedisError as exc:
                self.warn("redis", f"journal stream unreachable ({exc}); {len(self.pending)} entries kept to send")
                return
            del self.pending[: len(batch)]
            if self.warned:
                log.info("journal stream caught up")
                self.warned = ""

    def warn(self, why: str, msg: str) -> None:
        """Once per cause until the stream catches up."""
        if self.warned != why:
            log.warning(msg)
        self.warned = why


def attach(r: redis.Redis, keys: Keys, symbol: str, lease: Lease, settings: Settings,
           journal: FileJournal) -> tuple[FileJournal, JournalStream | None]:
    """The journal to trade on (restored from the stream) and its stream, when streaming is on."""
    if not settings.streams_journal:
        return journal, None
    stream = JournalStream(r, keys, symbol, lease, replicas=settings.wait_replicas, wait_ms=settings.journal_wait_ms)
    journal = stream.restore(journal, wait_s=settings.start_timeout_s)
    journal.on_append = stream.append
    return journal, stream
