"""A plugin strategy is checked for look-ahead and warm-up (``trading/check.py``) before an engine trades
it, on a window of the symbol's history, unless its config says ``check: false``.

At start, a finding is fatal (the engine fails with the finding as its reason: alerted, and the
position handled by ``on_failed``); on a hot reload it refuses the new version and the running one
stays (``config_rejected``). A replay engine starting at its file's first candle has no history yet:
it checks on the file's first candles (the strategy decides nothing from them; only it is compared with
itself). A version that passed is remembered by its fingerprint (``<data dir>/checks/``), so a restart — the
watchdog's recovery — does not check the same code and parameters again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from backend.src.core.config import StrategyConfig
from backend.src.core.types import Candle
from backend.src.market.candles import CandleSource, ReplaySource
from backend.src.trading.check import Report, check_strategy
from backend.src.trading.strategies.base import Strategy

MIN_CANDLES = 600  # the window checked: at least this many candles, and three warm-ups


def wanted(cfg: StrategyConfig) -> bool:
    return cfg.python is not None and cfg.check


def window(source: CandleSource, warmup: int) -> list[Candle]:
    n = max(MIN_CANDLES, 3 * warmup + 50)
    got = source.warmup(n)
    if len(got) < n and isinstance(source, ReplaySource):
        got = source.candles[:n]
    return got


def run(make: Callable[[], Strategy], source: CandleSource) -> Report | None:
    """The check's report, or None when there is too little history to run it."""
    warm = int(make().warmup_candles)
    candles = window(source, warm)
    if len(candles) < 2 * warm + 10:
        return None
    return check_strategy(make, candles, cuts=6, restarts=4)


def verdict(cfg: StrategyConfig, make: Callable[[], Strategy], source: CandleSource,
            log: logging.Logger | logging.LoggerAdapter[logging.Logger], checks_dir: Path) -> str:
    """Why the plugin may not trade ("" when it may), logged either way."""
    try:
        passed = checks_dir / f"{make().fingerprint}.ok"
        if passed.exists():
            log.info("strategy checked before: this version passed (%s)", passed.name)
            return ""
        rep = run(make, source)
    except Exception as exc:  # noqa: BLE001 - a plugin that raises is handled candle by candle (on_failed)
        log.warning("strategy check could not run (%s: %s); trading it unchecked", type(exc).__name__, exc)
        return ""
    if rep is None:
        log.warning("too little history to check the strategy for look-ahead; trading it unchecked")
        return ""
    if rep.ok:
        log.info("strategy checked: %s", rep.summary())
        checks_dir.mkdir(parents=True, exist_ok=True)
        passed.write_text(rep.summary() + "\n")
        return ""
    return rep.refusal(str(cfg.python))
