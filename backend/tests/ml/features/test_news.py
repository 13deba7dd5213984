"""News input: RSS/Atom/JSONL parsing, de-duplication, symbol tagging and as-of aggregates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from defusedxml import EntitiesForbidden

from backend.ml.features.news import (
    MARKET,
    aggregate,
    ingest,
    parse_feed,
    parse_time,
    publish,
    read_jsonl,
    read_sentiment,
    tag_symbols,
)
from backend.ml.features.sentiment_extractor import GemmaSentiment
from backend.src.core.keys import Keys
from backend.src.core.settings import Settings

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>wire</title>
<item><title>Bitcoin ETF approval expected soon</title><pubDate>Tue, 24 Nov 2026 06:00:00 GMT</pubDate></item>
<item><title><![CDATA[<b>Ethereum</b> exchange hacked, $200M drained]]></title>
<pubDate>Tue, 24 Nov 2026 06:30:00 +0000</pubDate></item>
<item><title>Markets wait for the Fed</title></item>
</channel></rss>"""
ATOM = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
<entry><title>Solana rallies 12% as inflows surge</title><updated>2026-11-24T05:00:00Z</updated><id>1</id></entry>
<entry><title>bitcoin etf approval expected SOON</title><published>2026-11-24T06:05:00Z</published></entry>
</feed>"""
T0 = parse_time("2026-11-24T07:00:00Z") or 0.0


def test_rss_and_atom() -> None:
    rss = parse_feed(RSS, "rss", seen_at=T0, symbols=SYMS)
    assert [i.title for i in rss] == ["Bitcoin ETF approval expected soon", "Ethereum exchange hacked, $200M drained",
                                      "Markets wait for the Fed"]
    assert rss[0].ts == T0 - 3600 and rss[1].ts == T0 - 1800 and rss[2].ts == T0  # no date: first seen
    assert rss[0].symbols == ("BTCUSDT",) and rss[1].symbols == ("ETHUSDT",) and rss[2].symbols == ()
    atom = parse_feed(ATOM, "atom", seen_at=T0, symbols=SYMS)
    assert atom[0].symbols == ("SOLUSDT",) and atom[0].ts == T0 - 7200
    assert atom[1].id == rss[0].id  # the same headline from two feeds is one item
    with pytest.raises(ValueError, match="not XML"):
        parse_feed(b"<html><body>oops", "x", T0, SYMS)
    with pytest.raises(ValueError, match="neither RSS nor Atom"):
        parse_feed(b"<html></html>", "x", T0, SYMS)


def test_entities_are_not_expanded() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]><rss><channel></channel></rss>'
    with pytest.raises(EntitiesForbidden):
        parse_feed(bomb, "x", T0, SYMS)


def test_jsonl(tmp_path: Path) -> None:
    f = tmp_path / "news.jsonl"
    f.write_text("\n".join([
        json.dumps({"text": "$BTC breaks record high", "ts": 1_795_000_000_000}),
        "not json",
        json.dumps({"title": "ETH staking outflows grow", "created_at": "2026-11-24T06:00:00Z", "source": "x"}),
        json.dumps({"ts": 5}),
        json.dumps({"text": "Dogecoin meme", "timestamp": 1_795_000_000}),
    ]) + "\n")
    items = read_jsonl(f, T0, SYMS)
    assert [i.ts for i in items] == [1_795_000_000.0, T0 - 3600, 1_795_000_000.0]
    assert items[0].symbols == ("BTCUSDT",) and items[1].source == "x" and items[2].symbols == ()


def test_tagging_does_not_match_inside_words() -> None:
    assert tag_symbols("Solution for ethics in bitcoiners", SYMS) == ()
    assert tag_symbols("SOL and ether up", SYMS) == ("ETHUSDT", "SOLUSDT")


def test_ingest_is_idempotent_and_aggregates_are_as_of(r: redis.Redis, settings: Settings) -> None:
    keys = Keys(settings.namespace)
    scorer = GemmaSentiment(settings=settings, r=r)
    items = parse_feed(RSS, "rss", T0, SYMS) + parse_feed(ATOM, "atom", T0, SYMS)
    assert ingest(r, keys, items, scorer) == {"seen": 4, "new": 4, "fallback": 0}
    assert ingest(r, keys, items, scorer)["new"] == 0  # a re-run counts nothing twice
    assert r.zcard(keys.news_index(MARKET)) == 4 and r.zcard(keys.news_index("BTCUSDT")) == 1

    btc = aggregate(r, keys, "BTCUSDT", T0, 6 * 3600, 3600)
    assert btc["count"] == 1 and btc["mean"] > 0.3
    before = aggregate(r, keys, "BTCUSDT", T0 - 3601, 6 * 3600, 3600)
    assert before["count"] == 0, "an item published after t is invisible at t"
    market = aggregate(r, keys, MARKET, T0, 6 * 3600, 3600)
    assert market["count"] == 4
    # decay: the 2 h old bullish SOL item weighs a quarter of a fresh one
    sol_now = aggregate(r, keys, "SOLUSDT", T0 - 7200, 6 * 3600, 3600)
    assert sol_now["decayed"] == pytest.approx(sol_now["mean"])
    out = publish(r, keys, SYMS, T0, 6 * 3600, 3600)
    stored = read_sentiment(r, keys, "ETHUSDT")
    assert stored is not None and stored["count"] == 1 and stored["mean"] < 0 and out["ETHUSDT"] == {
        k: stored[k] for k in ("mean", "count", "decayed")}
    assert read_sentiment(r, keys, "XRPUSDT") is None


def test_decay_weights_recent_items_more(r: redis.Redis, settings: Settings) -> None:
    keys = Keys(settings.namespace)
    for i, (ts, score) in enumerate([(T0 - 3 * 3600, 1.0), (T0 - 60, -1.0)]):
        r.hset(keys.news_item(f"id{i}"), mapping={"ts": ts, "score": score})
        r.zadd(keys.news_index("BTCUSDT"), {f"id{i}": ts})
    agg = aggregate(r, keys, "BTCUSDT", T0, 6 * 3600, 3600)
    assert agg["mean"] == 0.0 and agg["count"] == 2 and agg["decayed"] < -0.7
