"""A compiled LeviLang strategy on candles: causal higher timeframes, NaN as "no signal", position rules."""

from __future__ import annotations

import math

from backend.src.core.types import Candle
from backend.src.trading.levilang import compile_text
from backend.src.trading.levilang.strategy import LeviStrategy
from backend.src.trading.strategies.base import PositionState

M5 = 300_000


def candles(closes: list[float], start: int = 1_700_000_000_000 // 3_600_000 * 3_600_000) -> list[Candle]:
    return [Candle(start + i * M5, c, c + 1, c - 1, c, 10.0 + i % 3) for i, c in enumerate(closes)]


def strategy(body: str) -> LeviStrategy:
    return LeviStrategy(compile_text("name: t\ntimeframe: 5m\n" + body))


def test_an_hour_is_visible_on_the_candle_that_closes_it_and_never_before() -> None:
    s = strategy("indicators:\n  h: close @ 1h\nentry: h > 0\n")
    h = s.c.indicators["h"]
    cs = candles([float(i + 1) for i in range(30)])
    seen = []
    for c in cs:
        s.on_candle(c)
        seen.append(h.value)
    assert all(math.isnan(v) for v in seen[:11]), "nothing before the first hour has closed"
    assert seen[11] == 12.0, "the 12th 5m candle closes the hour: its close is the hour's close"
    assert seen[12:23] == [12.0] * 11, "the next hour is not seen until it closes"
    assert seen[23] == 24.0


def test_values_do_not_depend_on_later_candles() -> None:
    body = "indicators:\n  a: ema(close, 5) @ 15m\n  b: rsi(close, 3)\nentry: a > b\n"
    cs = candles([100 + 10 * math.sin(i / 4) for i in range(120)])
    full = strategy(body)
    values_full = []
    for c in cs:
        full.on_candle(c)
        values_full.append((full.c.indicators["a"].value, full.c.indicators["b"].value))
    for cut in (17, 50, 90):
        part = strategy(body)
        for c in cs[:cut]:
            part.on_candle(c)
        got = (part.c.indicators["a"].value, part.c.indicators["b"].value)
        assert str(got) == str(values_full[cut - 1])


def test_nan_and_division_by_zero_mean_no_signal() -> None:
    s = strategy("entry: close / (close - close) > 1 or not (sentiment > 0.2)\nexit: sentiment < 0\n")
    for c in candles([100.0] * 5):
        sig = s.on_candle(c)
        assert sig is not None and sig.target == 0.0, "unknown is never an entry, even under `not`"


def test_entry_exit_cooldown_min_hold_and_position_facts() -> None:
    s = strategy("entry: close > close[1]\nexit: close < close[1]\ncooldown_bars: 3\nmin_hold_bars: 2\n"
                 "sizing: {method: fixed_fraction, fraction: 0.5}\n")
    cs = candles([1, 2, 3, 2, 1, 2, 3])
    assert s.on_candle(cs[0]).target == 0.0  # type: ignore[union-attr]
    assert s.on_candle(cs[1]).target == 0.5  # type: ignore[union-attr]
    s.position = PositionState(qty=1.0, avg_price=2.0, bars_held=1, target=0.5)
    assert s.on_candle(cs[2]).target == 0.5, "holding keeps the sized target (no re-sizing)"  # type: ignore[union-attr]
    s.position = PositionState(qty=1.0, avg_price=2.0, bars_held=1, target=0.5)
    assert s.on_candle(cs[3]).target == 0.5, "exit waits for min_hold_bars"  # type: ignore[union-attr]
    s.position = PositionState(qty=1.0, avg_price=2.0, bars_held=2, target=0.5)
    assert s.on_candle(cs[4]).target == 0.0  # type: ignore[union-attr]
    s.position = PositionState(bars_since_exit=1)
    assert s.on_candle(cs[5]).target == 0.0, "cooldown after an exit"  # type: ignore[union-attr]
    s.position = PositionState(bars_since_exit=3)
    assert s.on_candle(cs[6]).target == 0.5  # type: ignore[union-attr]


def test_kelly_needs_a_model_edge_and_fixed_quote_sets_the_notional() -> None:
    kelly = strategy("entry: close > 0\nsizing: {method: kelly, fraction: 0.5}\n")
    assert kelly.on_candle(candles([5.0])[0]).target == 0.0  # type: ignore[union-attr]
    fixed = strategy("entry: close > 0\nsizing: {method: fixed_quote, amount: 250}\n")
    sig = fixed.on_candle(candles([5.0])[0])
    assert sig is not None and sig.target == 1.0 and sig.notional == 250


def test_feeds_are_read_only_by_a_file_that_uses_them() -> None:
    reads: list[int] = []

    def feeds() -> dict[str, float]:
        reads.append(1)
        return {"news_score": 0.3}

    plain = LeviStrategy(compile_text("name: t\nentry: close > 1\n"), extras=feeds)
    plain.on_candle(candles([5.0])[0])
    assert reads == [], "no Redis read per candle for a file without feeds"
    news = LeviStrategy(compile_text("name: t\nentry: sentiment > 0.2\n"), extras=feeds)
    sig = news.on_candle(candles([5.0])[0])
    assert reads == [1] and sig is not None and sig.target == 1.0, "news_score arrives as `sentiment`"


def test_short_rules_mirror_the_long_ones_and_reverse_on_one_candle() -> None:
    s = strategy("indicators:\n  f: sma(close, 2)\n  sl: sma(close, 4)\nentry: f > sl\nexit: f < sl\n"
                 "entry_short: f < sl and not in_short\nexit_short: f > sl\nsizing: {method: fixed_fraction, "
                 "fraction: 0.5}\ntrailing_stop_pct: 50\n")
    assert s.allow_short
    cs = candles([10, 10, 10, 10, 9, 8, 7, 8, 9, 10, 11])
    sigs = []
    for c in cs:
        sig = s.on_candle(c)
        sigs.append(sig.target if sig else None)
        if sig is not None and sig.target:  # as the journal would show it at the next candle
            s.position = PositionState(qty=sig.target, avg_price=c.close, bars_held=1, target=sig.target)
        elif sig is not None:
            s.position = PositionState()
    assert -0.5 in sigs and 0.5 in sigs
    first_long = sigs.index(0.5)
    assert sigs[first_long - 1] == -0.5, "the short turned long on one candle (exit_short and entry together)"
    assert "levi t reverse" in [s.on_candle(c).reason for c in candles([12, 11, 10, 9, 8], cs[-1].ts + M5)][1:]


def test_side_names_read_the_position() -> None:
    s = strategy("entry: not in_long and side >= 0\nentry_short: not in_short and side <= 0\n")
    s.position = PositionState(qty=-1.0, avg_price=10.0, bars_held=2, target=-1.0)
    sig = s.on_candle(candles([10.0])[0])
    assert sig is not None and sig.target == -1.0 and sig.reason == "levi t hold"
