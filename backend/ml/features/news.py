"""News input: RSS/Atom feeds and a JSONL file → de-duplicated, timestamped, scored items
in Redis → per-symbol aggregates (mean, count, decay-weighted) that engines read.

Each item keeps its publication time (or, lacking one, the time we first saw it), so a
feature at time t only uses items with ``ts <= t``: ``aggregate(..., now=t)`` is as-of.
Items are keyed by a hash of their normalised title, so re-reading a feed or re-running a
job never counts an item twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from defusedxml import ElementTree

from backend.ml.features.sentiment_extractor import FALLBACK, GemmaSentiment, preprocess
from backend.src.core.keys import Keys

log = logging.getLogger(__name__)
MARKET = "MARKET"  # index of every item, whatever it mentions
ATOM = "{http://www.w3.org/2005/Atom}"
QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "TUSD", "USD", "EUR", "BTC", "ETH")
ALIASES = {
    "BTC": ("bitcoin", "xbt"), "ETH": ("ethereum", "ether"), "SOL": ("solana",), "XRP": ("ripple",),
    "BNB": ("binance coin",), "ADA": ("cardano",), "DOGE": ("dogecoin",), "DOT": ("polkadot",),
    "AVAX": ("avalanche",), "LINK": ("chainlink",), "LTC": ("litecoin",), "TRX": ("tron",),
    "MATIC": ("polygon",), "POL": ("polygon",), "TON": ("toncoin",), "SHIB": ("shiba inu",),
}
RETENTION_S = 7 * 86400


@dataclass(frozen=True)
class NewsItem:
    id: str
    ts: float  # unix seconds: publication time, or first seen
    title: str
    source: str
    symbols: tuple[str, ...] = ()


def item_id(title: str) -> str:
    return hashlib.sha1(preprocess(title).casefold().encode(), usedforsecurity=False).hexdigest()[:20]


def base_asset(symbol: str) -> str:
    for q in QUOTES:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)]
    return symbol


def tag_symbols(text: str, symbols: Iterable[str]) -> tuple[str, ...]:
    """The configured symbols a text mentions, by ticker ($BTC, BTC) or name (Bitcoin)."""
    out = []
    for sym in symbols:
        base = base_asset(sym)
        names = (base, *ALIASES.get(base, ()))
        if re.search(r"(?<![A-Za-z])\$?(?:" + "|".join(re.escape(n) for n in names) + r")(?![A-Za-z])",
                     text, flags=re.IGNORECASE):
            out.append(sym)
    return tuple(out)


def parse_time(value: Any) -> float | None:
    """Unix seconds or milliseconds, ISO 8601, or an RFC 822 date (RSS)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0 if value > 1e11 else float(value)
    text = str(value).strip()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            dt = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_feed(body: bytes, source: str, seen_at: float, symbols: Iterable[str]) -> list[NewsItem]:
    """Items of an RSS 2.0 or Atom document. Raises ValueError on XML that is not a feed."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ValueError(f"{source}: not XML ({exc})") from exc
    syms = tuple(symbols)
    out = []
    if root.tag == f"{ATOM}feed":
        entries = [(e.findtext(f"{ATOM}title"), e.findtext(f"{ATOM}published") or e.findtext(f"{ATOM}updated"))
                   for e in root.iter(f"{ATOM}entry")]
    elif root.tag == "rss" or root.find("channel") is not None:
        entries = [(i.findtext("title"), i.findtext("pubDate")) for i in root.iter("item")]
    else:
        raise ValueError(f"{source}: neither RSS nor Atom (root <{root.tag}>)")
    for title, when in entries:
        title = preprocess(title or "")
        if title:
            ts = parse_time(when)
            out.append(NewsItem(item_id(title), ts if ts is not None else seen_at, title, source,
                                tag_symbols(title, syms)))
    return out


def read_jsonl(path: Path, seen_at: float, symbols: Iterable[str]) -> list[NewsItem]:
    """``{"text"|"title": ..., "ts"|"timestamp"|"created_at": ..., "source"?: ...}`` per line;
    bad lines are skipped with a warning naming the line."""
    syms = tuple(symbols)
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = preprocess(str(row.get("text") or row.get("title") or ""))
            except (ValueError, AttributeError):
                log.warning("%s line %d: not a JSON object; skipped", path, n)
                continue
            if not text:
                log.warning("%s line %d: no text or title; skipped", path, n)
                continue
            ts = parse_time(row.get("ts", row.get("timestamp", row.get("created_at"))))
            out.append(NewsItem(item_id(text), ts if ts is not None else seen_at, text,
                                str(row.get("source") or path.name), tag_symbols(text, syms)))
    return out


def fetch_feeds(http: httpx.Client, urls: Iterable[str], seen_at: float, symbols: Iterable[str],
                timeout_s: float = 10.0) -> tuple[list[NewsItem], list[str]]:
    """Items from every feed that answered, and one error line per feed that did not."""
    items: list[NewsItem] = []
    errors = []
    for url in urls:
        try:
            resp = http.get(url, timeout=timeout_s, follow_redirects=True)
            resp.raise_for_status()
            items.extend(parse_feed(resp.content, url, seen_at, symbols))
        except (httpx.HTTPError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
            log.warning("news feed %s: %s", url, exc)
    return items, errors


def ingest(r: redis.Redis, keys: Keys, items: list[NewsItem], scorer: GemmaSentiment) -> dict[str, int]:
    """Score and store the items not seen before. Idempotent: an item is stored once."""
    unique = list({i.id: i for i in items}.values())
    pipe = r.pipeline(transaction=False)
    for i in unique:
        pipe.exists(keys.news_item(i.id))
    known = pipe.execute()
    new = [i for i, k in zip(unique, known, strict=True) if not k]
    if not new:
        return {"seen": len(unique), "new": 0, "fallback": 0}
    scores = scorer.analyze_scored_batch([i.title for i in new])
    pipe = r.pipeline(transaction=True)
    for i, s in zip(new, scores, strict=True):
        pipe.hset(keys.news_item(i.id), mapping={"ts": i.ts, "title": i.title[:500], "source": i.source,
                                                 "symbols": ",".join(i.symbols), "score": s.score,
                                                 "scored_by": s.source})
        pipe.expire(keys.news_item(i.id), RETENTION_S)
        for sym in (MARKET, *i.symbols):
            pipe.zadd(keys.news_index(sym), {i.id: i.ts}, nx=True)
    pipe.execute()
    return {"seen": len(unique), "new": len(new), "fallback": sum(s.source.endswith(FALLBACK) for s in scores)}


def aggregate(r: redis.Redis, keys: Keys, symbol: str, now: float, window_s: float,
              half_life_s: float) -> dict[str, float]:
    """Mean, count and decay-weighted mean of the items in (now - window, now] — as-of ``now``."""
    raw: list[Any] = r.zrangebyscore(keys.news_index(symbol), f"({now - window_s}", now, withscores=True)
    ids = [(m.decode() if isinstance(m, bytes) else str(m), float(ts)) for m, ts in raw]
    pipe = r.pipeline(transaction=False)
    for member, _ts in ids:
        pipe.hget(keys.news_item(member), "score")
    values = [(float(s), ts) for s, (_m, ts) in zip(pipe.execute(), ids, strict=True) if s is not None]
    if not values:
        return {"mean": 0.0, "count": 0.0, "decayed": 0.0}
    weights = [math.pow(0.5, (now - ts) / half_life_s) for _s, ts in values]
    return {"mean": sum(s for s, _ in values) / len(values), "count": float(len(values)),
            "decayed": sum(w * s for w, (s, _) in zip(weights, values, strict=True)) / sum(weights)}


def publish(r: redis.Redis, keys: Keys, symbols: Iterable[str], now: float, window_s: float,
            half_life_s: float) -> dict[str, dict[str, float]]:
    """Recompute and store every symbol's aggregate (and the whole market's); trim old items."""
    out = {}
    pipe = r.pipeline(transaction=True)  # readers see every symbol's update at once
    for sym in (MARKET, *symbols):
        agg = aggregate(r, keys, sym, now, window_s, half_life_s)
        out[sym] = agg
        pipe.hset(keys.sentiment(sym), mapping={"mean": agg["mean"], "count": agg["count"],
                                                "decayed": agg["decayed"], "window_s": window_s, "updated_at": now})
        pipe.zremrangebyscore(keys.news_index(sym), "-inf", now - RETENTION_S)
    pipe.execute()
    return out


def read_sentiment(r: redis.Redis, keys: Keys, symbol: str) -> dict[str, float] | None:
    """What an engine reads: the symbol's aggregate, or None before the first job ran."""
    raw = r.hgetall(keys.sentiment(symbol))
    if not raw:
        return None
    return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}
