"""The manager's once-a-second duties: registry mirror, stall detection, presence key."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import redis

from backend.src.core.fsio import write_json_atomic
from backend.src.core.health import heartbeat_age, is_stalled
from backend.src.core.keys import Keys
from backend.src.core.settings import Settings
from backend.src.supervisor.state_store import StateStore, registry_entry

log = logging.getLogger(__name__)
PRESENCE_TTL_S = 5


class Monitor:
    def __init__(self, r: redis.Redis, keys: Keys, store: StateStore, settings: Settings, owner: str,
                 clock: Callable[[], float]) -> None:
        self.r, self.keys, self.store, self.settings = r, keys, store, settings
        self.owner, self.clock = owner, clock
        self.stalled: set[str] = set()
        self.stall_alerted: dict[str, float] = {}  # symbol -> when its last stall alert went out
        self.global_stop = ""
        self.liquidations: dict[str, int] = {}  # symbol -> liquidations its journal holds, as last seen

    def mirror(self, symbols: list[str]) -> None:
        """Rewrite engine_registry.json from Redis (the live truth) and check for stalls."""
        try:
            states = self.store.read_all(symbols)
            beats = self.r.mget([self.keys.heartbeat(s) for s in symbols]) if symbols else []
            flag = str(self.r.get(self.keys.global_stop) or "")
        except redis.RedisError:
            return
        if flag != self.global_stop:
            if flag:
                log.error("GLOBAL STOP active: %s; engines are flat and refuse entries", flag.partition("|")[2])
            else:
                log.warning("global stop cleared; engines may open positions again")
            self.global_stop = flag
        now = self.clock()
        write_json_atomic(self.settings.registry_path, {s: registry_entry(st, now) for s, st in states.items()})
        for sym, hb in zip(symbols, beats, strict=True):
            self.check_stall(sym, states[sym], heartbeat_age(str(hb) if hb else None, now), now)
            self.check_liquidation(sym, states[sym])

    def check_liquidation(self, symbol: str, state: dict[str, str]) -> None:
        """A perpetual position liquidated since the last look: an alert and a ``liquidated`` event."""
        n = int(state.get("liquidations") or 0)
        seen = self.liquidations.setdefault(symbol, n)
        if n > seen:
            log.error("engine %s: position liquidated (%d in its journal); price %s", symbol, n,
                      state.get("last_price", "?"), extra={"symbol": symbol, "alert": True})
            self.store.event("liquidated", symbol, count=n)
        self.liquidations[symbol] = n

    def check_stall(self, symbol: str, state: dict[str, str], hb_age: float | None, now: float) -> None:
        stalled = is_stalled(state, hb_age, now, self.settings.heartbeat_timeout_s)
        if stalled == (symbol in self.stalled):
            return
        if stalled:
            self.stalled.add(symbol)
            idle = now - float(state.get("last_candle_at") or now)
            # One alert per symbol and alert window; a flapping feed repeats only at INFO.
            fresh = now - self.stall_alerted.get(symbol, float("-inf")) >= self.settings.alert_window_s
            if fresh:
                self.stall_alerted[symbol] = now
                log.error("engine %s stalled: alive but no candle for %.1fs", symbol, idle,
                          extra={"symbol": symbol, "alert": True})
            else:
                log.info("engine %s stalled again: no candle for %.1fs", symbol, idle, extra={"symbol": symbol})
            self.store.event("stalled", symbol, idle_s=f"{idle:.1f}")
        else:
            self.stalled.discard(symbol)
            log.info("engine %s receives candles again", symbol, extra={"symbol": symbol})
            self.store.event("unstalled", symbol)

    def presence(self, symbols: list[str]) -> None:
        try:
            key = self.keys.manager(self.owner)
            pipe = self.r.pipeline(transaction=True)
            pipe.hset(key, mapping={"pid": str(os.getpid()), "owner": self.owner, "symbols": ",".join(symbols),
                                    "heartbeat_at": f"{self.clock():.3f}"})
            pipe.expire(key, PRESENCE_TTL_S)
            pipe.execute()
        except redis.RedisError:
            pass

    def absent(self) -> None:
        try:
            self.r.delete(self.keys.manager(self.owner))
        except redis.RedisError:
            pass
