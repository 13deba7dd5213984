"""An engine's candle source, built from its source spec: a replay file, synthetic candles, or a live
exchange feed. Where a restarted engine resumes: after the newest candle its journal or its last
heartbeat (from the same feed) saw."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from backend.src.core.config import SourceSpec, SymbolConfig
from backend.src.core.settings import Settings
from backend.src.market.candles import CandleSource, ReplaySource, SyntheticSource, load_candles


@dataclass(frozen=True)
class Opened:
    source: CandleSource
    period_s: float  # wall seconds between candles (a replay's speed applied)
    cursor: int  # the newest candle already traded (-1: none)


def resume_cursor(spec: SourceSpec, saved: MutableMapping[str, str], last_candle: int) -> int:
    """The newest candle traded: the journal's, or the last heartbeat's when it came from the same feed."""
    saved_cursor = int(float(saved.get("cursor_ts", -1) or -1)) if saved.get("source") == spec.identity else -1
    return max(last_candle, saved_cursor)


def open_source(symbol: str, spec: SourceSpec, cfg: SymbolConfig, settings: Settings, *,
                saved: MutableMapping[str, str], last_candle: int, last_price: float, exchange: Any,
                clock: Callable[[], float], log: logging.LoggerAdapter) -> Opened:  # type: ignore[type-arg]
    cursor = resume_cursor(spec, saved, last_candle)
    now = clock()
    if spec.kind == "replay" and spec.path is not None:
        candles, report = load_candles(spec.path)
        speed = spec.speed or settings.replay_speed
        log.info("replay loaded", extra={"file": str(spec.path), "rows": report.rows,
                                         "duplicates": report.duplicates, "gaps": report.gaps})
        source: CandleSource = ReplaySource(candles, speed=speed, after_ts=cursor if cursor >= 0 else None, now=now)
        return Opened(source, report.timeframe_ms / 1000 / speed, cursor)
    if spec.kind == "live":
        from backend.src.market.exchange import call  # noqa: PLC0415 - ccxt only for live engines
        from backend.src.market.live_source import LiveSource, timeframe_ms  # noqa: PLC0415

        call(exchange.load_markets)
        live = LiveSource(exchange, str(spec.market), cfg.timeframe, poll_delay_s=settings.live_poll_delay_s,
                          clock=clock)
        return Opened(live, timeframe_ms(cfg.timeframe) / 1000, cursor)
    price = float(saved.get("last_price", 0) or 0) or last_price or cfg.start_price
    synthetic = SyntheticSource(symbol, seed=cfg.seed, interval_s=settings.synthetic_interval_s,
                                timeframe=cfg.timeframe, annual_volatility=cfg.annual_volatility, price=price, now=now)
    return Opened(synthetic, settings.synthetic_interval_s, cursor)
