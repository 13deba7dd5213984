"""Closing a failed engine's position (``on_failed: flatten``).

The manager spawns this once an engine is ``failed``: a process like the engine (forked from
the same forkserver, the same lease, journal and execution code), but with no strategy and
no loop. It takes the lease, rebuilds the position from the journal, connects to the engine's
venue (live: reconciles with the exchange) and closes the position there at the freshest price
the venue can tell (live: the exchange's last candle), else the last known one, journals the exit
with reason ``risk:engine_failed``, writes the state once and exits.
"""

from __future__ import annotations

from dataclasses import replace

import redis

from backend.src.core.config import StrategyConfig
from backend.src.core.errors import EXIT_OK
from backend.src.core.states import EngineState
from backend.src.engine.engine import Engine
from backend.src.engine.spec import EngineSpec

ENGINE_FAILED = "risk:engine_failed"


def liquidation_spec(spec: EngineSpec) -> EngineSpec:
    """The failed engine's spec in liquidate mode, with no model to load (nothing that may fail again)."""
    no_model = spec.config.model_copy(update={"strategy": StrategyConfig(name="buy_and_hold")})
    return replace(spec, mode="liquidate", config=no_model)


def last_known_price(engine: Engine) -> float:
    """The failed engine's last heartbeat price (fresher than the journal), else the journal's."""
    try:
        saved = engine.r.hgetall(engine.keys.state(engine.symbol))
    except redis.RedisError:
        saved = {}
    same_source = saved.get("source") == engine.spec.source.identity  # type: ignore[union-attr]
    price = float(saved.get("last_price", 0) or 0) if same_source else 0.0  # type: ignore[union-attr]
    return price or engine.book.last_price or engine.book.avg_price


def liquidate(engine: Engine) -> int:
    engine.acquire_lease()
    qty_before = engine.book.qty
    price = engine.venue.mark_price(engine.config.timeframe) or last_known_price(engine)
    engine.trader.connect(price, gen=engine.gen, now=engine.clock.time())
    ts = max(engine.cursor_ts, engine.trader.last_candle, 0)
    fills = engine.trader.flatten(price, ts, gen=engine.gen, now=engine.clock.time(), reason=ENGINE_FAILED)
    engine.log.warning("failed engine's position closed", extra={
        "position_before": qty_before, "position": engine.book.qty, "price": price, "fills": len(fills)})
    engine.status = EngineState.FAILED
    engine.beat(force=True)
    try:  # once the lease is gone, the next reservation by any engine frees the dead engine's slot
        engine.r.delete(engine.keys.heartbeat(engine.symbol))
        engine.lease.release()
    except redis.RedisError:
        pass
    engine.journal.close()
    return EXIT_OK
