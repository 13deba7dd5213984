"""A configured source resolved per symbol: a replay file that exists and parses, or a market of the
exchange (``UsageError`` otherwise). Checked before anything starts, and on every reload."""

from __future__ import annotations

from dataclasses import replace

from backend.src.core.config import SourceSpec
from backend.src.core.errors import UsageError
from backend.src.core.settings import Settings
from backend.src.market.candles import load_candles, resolve_replay_file
from backend.src.market.exchange import ExchangeUnavailable, call, make_exchange, resolve_symbol


def resolve_sources(spec: SourceSpec, symbols: list[str], settings: Settings | None = None,
                    perpetual: frozenset[str] = frozenset()) -> dict[str, SourceSpec]:
    """Per-symbol source: a replay file must exist and parse, a live symbol must be a market of
    the exchange (UsageError otherwise): its spot market, or for the ``perpetual`` symbols its
    USD-margined perpetual (``BTCUSDT`` -> ``BTC/USDT:USDT``)."""
    if spec.kind == "live":
        return resolve_live(spec, symbols, settings or Settings(), perpetual)
    if spec.kind != "replay" or spec.path is None:
        return dict.fromkeys(symbols, spec)
    out = {}
    for sym in symbols:
        path = resolve_replay_file(spec.path, sym)
        load_candles(path)  # unreadable or malformed: fail now, before anything starts
        out[sym] = SourceSpec("replay", path.resolve())
    return out


def resolve_live(spec: SourceSpec, symbols: list[str], settings: Settings,
                 perpetual: frozenset[str] = frozenset()) -> dict[str, SourceSpec]:
    ex = make_exchange(str(spec.exchange), base_url=settings.exchange_base_url, timeout_s=settings.exchange_timeout_s)
    try:
        call(ex.load_markets, attempts=3)
    except ExchangeUnavailable as exc:
        raise UsageError(f"--source: {spec.exchange} unreachable: {exc}") from exc
    return {s: replace(spec, market=resolve_symbol(ex, s, kind="swap" if s in perpetual else "spot")) for s in symbols}
