"""Which venue an engine trades on, decided once, here: an exchange through ccxt with ``--live`` on a
live feed, else the paper venue (on a live feed, with that exchange's rules and fees)."""

from __future__ import annotations

from typing import Any

from backend.src.core.config import SourceSpec, SymbolConfig
from backend.src.core.errors import UsageError
from backend.src.core.settings import ENGINE_SECRETS, Settings
from backend.src.venue.base import Venue
from backend.src.venue.paper import PaperVenue


def trades_live(settings: Settings, source: SourceSpec) -> bool:
    return settings.live_trading and source.kind == "live"


def check_venue(settings: Settings, source: SourceSpec) -> None:
    """At the entry point: real orders need a live feed and the exchange keys (UsageError naming what is missing)."""
    if not settings.live_trading:
        return
    if source.kind != "live":
        raise UsageError("--live: real orders need --source live:EXCHANGE")
    if not (settings.exchange_api_key and settings.exchange_secret):
        raise UsageError("--live: set LEVIBOT_EXCHANGE_API_KEY and LEVIBOT_EXCHANGE_SECRET in the environment")


def engine_secrets(settings: Settings) -> frozenset[str]:
    """The secrets an engine process is given: the exchange keys when (and only when) it trades live."""
    return ENGINE_SECRETS if settings.live_trading else frozenset()


def exchange_for(settings: Settings, source: SourceSpec) -> Any:
    """The ccxt client of a live feed (keys only for a live venue), or None. No network call yet."""
    if source.kind != "live":
        return None
    from backend.src.market.exchange import make_exchange  # noqa: PLC0415 - ccxt only for live feeds

    keys = (settings.exchange_api_key, settings.exchange_secret) if trades_live(settings, source) else (None, None)
    return make_exchange(str(source.exchange), base_url=settings.exchange_base_url,
                         timeout_s=settings.exchange_timeout_s,
                         api_key=keys[0].get_secret_value() if keys[0] else None,
                         secret=keys[1].get_secret_value() if keys[1] else None)


def open_venue(symbol: str, settings: Settings, source: SourceSpec, cfg: SymbolConfig, exchange: Any) -> Venue:
    if trades_live(settings, source):
        from backend.src.venue.live import LiveVenue  # noqa: PLC0415

        return LiveVenue(symbol, exchange, str(source.market), cfg)
    if exchange is not None:
        from backend.src.venue.live import exchange_terms  # noqa: PLC0415

        return PaperVenue(cfg, terms=lambda: exchange_terms(exchange, str(source.market)))
    return PaperVenue(cfg)
