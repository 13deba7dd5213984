"""Ships what the engines recorded into the analytics store, exactly once.

Sources: each engine's journal (fills, orders with their acks/rejects/cancels, day openings: the
money path, fsynced, never lost), the fleet's event stream and the engines' candle streams (the
candles as traded with position, equity and the model's prediction; capped in Redis at
``LEVIBOT_HISTORY_LEN`` per engine, which is how long an outage the candles survive). Derived in
the store after each batch: equity once a minute (candle time) and predictions with their outcome
(the next candle's close).

Exactly once, without transactions: every row has a natural key (journal: symbol + seq; events:
the stream id; candles: symbol + candle time) and the checkpoint is the store itself — at start
the shipper asks it for the last key of each table and symbol and ships only what comes after.
One INSERT per table per cycle is one block, which ClickHouse writes whole or not at all. A cycle
that fails (the store down) advances nothing and is tried again. Engines never wait on any of it.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from backend.src.analytics.store import Store, insert, quote, rows
from backend.src.core.keys import Keys

log = logging.getLogger(__name__)
ORDER_TYPES = ("order", "ack", "reject", "cancel")
MINUTE_MS = 60_000


@dataclass
class Cursor:
    """How far a journal file has been shipped (bytes), and which file (a replaced one starts over)."""

    inode: int = -1
    offset: int = 0


@dataclass
class Batch:
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    cursors: dict[str, Cursor] = field(default_factory=dict)
    stream_ids: dict[str, str] = field(default_factory=dict)
    candle_symbols: set[str] = field(default_factory=set)

    def size(self) -> int:
        return sum(len(v) for v in self.tables.values())


def journal_row(symbol: str, e: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    kind, seq, gen = e.get("type"), int(e.get("seq", 0)), int(e.get("gen", 0))
    base = {"symbol": symbol, "seq": seq, "gen": gen}
    if kind == "fill":
        return "fills", {**base, "ts": int(e.get("candle_ts") or 0), "at": float(e.get("ts") or 0),
                         "order_id": str(e.get("order_id", "")), "side": str(e.get("side", "")),
                         "qty": float(e.get("qty") or 0), "price": float(e.get("price") or 0),
                         "fee": float(e.get("fee") or 0), "liquidity": str(e.get("liquidity", "")),
                         "reason": str(e.get("reason", ""))[:500], "source": str(e.get("source", ""))}
    if kind in ORDER_TYPES:
        return "orders", {**base, "type": kind, "order_id": str(e.get("id", "")),
                          "order_kind": str(e.get("kind", "")) if kind == "order" else "",
                          "side": str(e.get("side", "")), "qty": float(e.get("qty") or 0),
                          "price": float(e.get("price") or 0), "ts": max(0, int(e.get("candle_ts") or 0)),
                          "reason": str(e.get("reason", ""))[:500]}
    if kind == "funding":
        return "funding", {**base, "ts": int(e.get("candle_ts") or 0), "at": float(e.get("ts") or 0),
                           "rate": float(e.get("rate") or 0), "qty": float(e.get("qty") or 0),
                           "price": float(e.get("price") or 0), "amount": float(e.get("amount") or 0)}
    if kind == "day":
        return "day_marks", {**base, "day": str(e.get("day", "")), "equity": float(e.get("equity") or 0),
                             "price": float(e.get("price") or 0)}
    return None


def _num(fields: dict[str, str], name: str) -> float | None:
    v = fields.get(name)
    return float(v) if v not in (None, "", "nan") else None


class Shipper:
    def __init__(self, store: Store, r: redis.Redis | None, keys: Keys, journal_dir: Path) -> None:
        """``r`` None: the journals only (``backfill``, when no Redis runs)."""
        self.store, self.r, self.keys, self.journal_dir = store, r, keys, journal_dir
        self.cursors: dict[str, Cursor] = {}
        self.stream_ids: dict[str, str] = {}  # Redis stream key -> last id shipped
        self.last: dict[tuple[str, str], int] = {}  # (table, symbol) -> last seq / ts in the store
        self.event_last = (0, 0)
        self.rederive: set[str] = set()
        self.shipped = 0

    # ------------------------------------------------------------------ checkpoints: the store itself
    def load_checkpoints(self) -> None:
        self.last = {}
        for table, col in (("fills", "seq"), ("orders", "seq"), ("day_marks", "seq"), ("candles", "ts"),
                           ("equity", "ts"), ("predictions", "ts")):
            sql = f"SELECT symbol, max({col}) AS last FROM {table} GROUP BY symbol"  # noqa: S608 - our constants
            for row in rows(self.store, sql):
                self.last[(table, str(row["symbol"]))] = int(row["last"])
        top = rows(self.store, "SELECT ms, n FROM events ORDER BY ms DESC, n DESC LIMIT 1")
        self.event_last = (int(top[0]["ms"]), int(top[0]["n"])) if top else (0, 0)
        self.cursors, self.stream_ids = {}, {}  # sources are read again from the start, filtered by these
        # derived rows a killed shipper did not get to: derived again at the next cycle
        self.rederive = {s for (table, s) in self.last if table == "candles"}

    # ------------------------------------------------------------------ one cycle
    def cycle(self) -> int:
        """Read what is new, insert it, then derive equity and predictions; rows inserted."""
        batch = Batch()
        self.read_journals(batch)
        self.read_events(batch)
        for symbol in self.symbols():
            self.read_candles(symbol, batch)
        for table, records in batch.tables.items():
            if records:
                insert(self.store, table, records)
        # everything is in: move the checkpoints on
        for table, records in batch.tables.items():
            for rec in records:
                if table == "events":
                    self.event_last = max(self.event_last, (rec["ms"], rec["n"]))
                else:
                    key = (table, rec["symbol"])
                    self.last[key] = max(self.last.get(key, -1), rec["seq" if "seq" in rec else "ts"])
        self.cursors.update(batch.cursors)
        self.stream_ids.update(batch.stream_ids)
        derived = sum(self.derive(symbol) for symbol in sorted(batch.candle_symbols | self.rederive))
        self.rederive = set()
        self.shipped += batch.size() + derived
        return batch.size() + derived

    def symbols(self) -> list[str]:
        if self.r is None:
            return []
        return sorted(str(s) for s in self.r.smembers(self.keys.engines))  # type: ignore[union-attr]

    def journals(self) -> list[Path]:
        return sorted(self.journal_dir.glob("*.jsonl"))

    def read_journals(self, batch: Batch, paths: Iterable[Path] | None = None) -> None:
        for path in self.journals() if paths is None else paths:
            symbol = path.stem
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            cur = self.cursors.get(symbol, Cursor())
            start = cur.offset if cur.inode == st.st_ino and cur.offset <= st.st_size else 0
            with path.open("rb") as fh:
                fh.seek(start)
                data = fh.read()
            end = data.rfind(b"\n") + 1  # complete lines only: a line being written waits for the next cycle
            for line in data[:end].splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a torn line the engine cuts off at its next start
                row = journal_row(symbol, entry) if isinstance(entry, dict) else None
                if row and row[1]["seq"] > self.last.get((row[0], symbol), 0):
                    batch.tables[row[0]].append(row[1])
            batch.cursors[symbol] = Cursor(st.st_ino, start + end)

    def read_events(self, batch: Batch) -> None:
        if self.r is None:
            return
        key = self.keys.events
        after = self.stream_ids.get(key, f"{self.event_last[0]}-{self.event_last[1]}")
        entries = self.r.xrange(key, f"({after}", "+", count=10_000)  # type: ignore[arg-type]
        for msg_id, f in cast(list[tuple[str, dict[str, str]]], entries):
            ms, n = (int(x) for x in msg_id.split("-"))
            if (ms, n) <= self.event_last:
                continue
            rest = {k: v for k, v in f.items() if k not in ("type", "symbol", "reason")}
            batch.tables["events"].append({"ms": ms, "n": n, "type": f.get("type", ""), "symbol": f.get("symbol", ""),
                                           "reason": f.get("reason", "")[:1000],
                                           "fields": json.dumps(rest, separators=(",", ":"))})
            batch.stream_ids[key] = msg_id

    def read_candles(self, symbol: str, batch: Batch) -> None:
        assert self.r is not None  # noqa: S101 - symbols() is empty without Redis
        key = self.keys.history(symbol)
        after = self.stream_ids.get(key)
        entries = self.r.xrange(key, f"({after}" if after else "-", "+")  # type: ignore[arg-type]
        done = self.last.get(("candles", symbol), -1)
        for msg_id, f in cast(list[tuple[str, dict[str, str]]], entries):
            batch.stream_ids[key] = msg_id
            ts = int(f["ts"])
            if ts <= done:
                continue
            done = ts
            batch.tables["candles"].append({
                "symbol": symbol, "ts": ts, "open": float(f["o"]), "high": float(f["h"]), "low": float(f["l"]),
                "close": float(f["c"]), "volume": float(f["v"]), "position": float(f.get("pos") or 0),
                "equity": float(f.get("eq") or 0), "at": float(f.get("at") or 0), "prob_up": _num(f, "p"),
                "confidence": _num(f, "cf"), "model": f.get("mv", "")})
            batch.candle_symbols.add(symbol)

    # ------------------------------------------------------------------ derived tables
    def derive(self, symbol: str) -> int:
        """Equity once a minute (the minute's last candle, once a later minute has begun) and
        predictions paired with the next close, from the candles in the store after their checkpoints."""
        eq_last, pred_last = self.last.get(("equity", symbol), -1), self.last.get(("predictions", symbol), -1)
        since = min(eq_last + MINUTE_MS if eq_last >= 0 else 0, max(pred_last, 0))
        got = rows(self.store, "SELECT ts, close, equity, position, prob_up, confidence, model FROM candles "  # noqa: S608
                               f"WHERE symbol = {quote(symbol)} AND ts >= {int(since)} ORDER BY ts")  # (quoted)
        if not got:
            return 0
        equity, minutes = [], defaultdict(dict)  # type: ignore[var-annotated]
        for c in got:
            minutes[c["ts"] // MINUTE_MS * MINUTE_MS] = c
        current = got[-1]["ts"] // MINUTE_MS * MINUTE_MS
        for m, c in sorted(minutes.items()):
            if eq_last < m < current:
                equity.append({"symbol": symbol, "ts": m, "equity": c["equity"], "position": c["position"]})
        preds = [{"symbol": symbol, "ts": a["ts"], "prob_up": a["prob_up"], "confidence": a["confidence"] or 0.0,
                  "model": a["model"], "close": a["close"], "next_close": b["close"]}
                 for a, b in zip(got, got[1:], strict=False) if a["ts"] > pred_last and a["prob_up"] is not None]
        insert(self.store, "equity", equity)
        if equity:
            self.last[("equity", symbol)] = equity[-1]["ts"]
        insert(self.store, "predictions", preds)
        if preds:
            self.last[("predictions", symbol)] = preds[-1]["ts"]
        return len(equity) + len(preds)

