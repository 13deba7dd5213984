"""The fleet as Redis holds it: every engine's state and heartbeat, the global stop, live managers.

One read model for every client that shows the fleet (the API and its dashboard, the Telegram bot):
read-only, one pipelined round trip per snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from backend.src.core.buckets import RECOVERY_BUCKETS
from backend.src.core.health import format_uptime, heartbeat_age, is_stalled
from backend.src.core.keys import RQ_QUEUES, Keys
from backend.src.core.states import LIVE_STATES, EngineState

STATUSES = tuple(s.value for s in EngineState)  # every status, in the state machine's order


@dataclass
class Snapshot:
    taken_at: float
    engines: list[dict[str, Any]]
    global_stop: str | None
    recovery: dict[str, str] = field(default_factory=dict)
    managers: list[dict[str, str]] = field(default_factory=list)
    retrain: dict[str, str] = field(default_factory=dict)
    queues: dict[str, int] = field(default_factory=dict)  # RQ jobs waiting, per queue
    notify: dict[str, str] = field(default_factory=dict)  # notification webhooks: delivered:<sink>, dead:<sink>

    def totals(self) -> dict[str, Any]:
        """Fleet totals in one display currency (USD): each engine's figures times its quote's USD rate;
        engines whose quote has no known rate are left out and listed."""
        out: dict[str, Any] = {"currency": "USD", "equity": 0.0, "pnl": 0.0, "daily_pnl": 0.0, "unpriced": []}
        for e in self.engines:
            rate = e["usd_per_quote"]
            if rate is None:
                if e["quote"] is not None or e["equity"]:
                    out["unpriced"].append(e["symbol"])
                continue
            for k in ("equity", "pnl", "daily_pnl"):
                out[k] += e[k] * rate
        for k in ("equity", "pnl", "daily_pnl"):
            out[k] = round(out[k], 2)
        return out

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for e in self.engines:
            out[e["status"]] = out.get(e["status"], 0) + 1
        return out

    def recovery_buckets(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative (le, count) pairs for a Prometheus histogram, and the sum."""
        return cumulative(self.recovery, RECOVERY_BUCKETS), float(self.recovery.get("sum", 0))


def cumulative(hist: dict[str, str], bounds: tuple[float, ...] | tuple[int, ...]) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs of a Prometheus histogram from per-bucket counts ``le:<bound>``."""
    acc, out = 0.0, []
    for b in bounds:
        acc += float(hist.get(f"le:{b}", 0))
        out.append((str(b), acc))
    acc += float(hist.get("le:+Inf", 0))
    out.append(("+Inf", acc))
    return out


def engine_view(symbol: str, st: dict[str, str], hb: str | None, now: float, hb_timeout: float) -> dict[str, Any]:
    status = st.get("status", "unknown")
    age = heartbeat_age(hb, now)
    started = float(st.get("started_at") or 0)
    live = status in LIVE_STATES
    uptime_s = now - started if started and status == "running" else 0.0
    return {
        "symbol": symbol,
        "status": status,
        "uptime": format_uptime(uptime_s),
        "uptime_s": round(uptime_s, 1),
        "pid": int(st["pid"]) if st.get("pid") and live else None,
        "restarts": int(st.get("restarts") or 0),
        "memory_restarts": int(st.get("memory_restarts") or 0),
        "last_error": st.get("last_error") or None,
        "last_heartbeat_age_s": None if age is None else round(age, 3),
        "up": status == "running" and age is not None and age <= hb_timeout,
        "stalled": is_stalled(st, age, now, hb_timeout),
        "position": float(st.get("position") or 0),
        "side": st.get("side") or ("long" if float(st.get("position") or 0) > 0 else
                                   "short" if float(st.get("position") or 0) < 0 else "flat"),
        "market": st.get("market") or "spot",
        "leverage": float(st.get("leverage") or 1),
        "margin": float(st["margin"]) if st.get("margin") else None,  # perpetuals: the isolated margin
        "liquidation_price": float(st["liquidation_price"]) if st.get("liquidation_price") else None,
        "funding": round(float(st.get("funding") or 0), 6),  # received (+) or paid (-) in total
        "avg_price": float(st.get("avg_price") or 0) or None,
        "last_price": float(st.get("last_price") or 0) or None,
        "pnl": round(float(st.get("pnl") or 0), 2),
        "daily_pnl": round(float(st.get("daily_pnl") or 0), 2),
        "equity": round(float(st.get("equity") or 0), 2),
        "last_trade": st.get("last_trade") or None,
        "heartbeat_at": float(st.get("heartbeat_at") or 0) or None,
        "strategy": st.get("strategy") or None,
        "strategy_hash": st.get("strategy_hash") or None,
        "model_version": st.get("model_version") or None,
        "quote": st.get("quote") or None,
        "usd_per_quote": float(st["usd_per_quote"]) if st.get("usd_per_quote") else None,
        "halted": st.get("halted") or None,
        "owner": st.get("owner") or None,
        "last_command": st.get("last_command") or None,
        # failed engines: what became of the position (flattening, flattened, flatten_failed, holding, flat)
        "on_failed": (st.get("on_failed") or None) if status == "failed" else None,
    }


async def take(r: aioredis.Redis, keys: Keys, hb_timeout: float, *, with_extras: bool = False) -> Snapshot:
    symbols = sorted(str(s) for s in await r.smembers(keys.engines))  # type: ignore[misc]
    pipe = r.pipeline(transaction=False)
    for s in symbols:
        pipe.hgetall(keys.state(s))
    pipe.mget([keys.heartbeat(s) for s in symbols] or [keys.heartbeat("")])
    pipe.get(keys.global_stop)
    if with_extras:
        pipe.hgetall(keys.recovery_histogram)
        pipe.hgetall(keys.retrain)
        for q in RQ_QUEUES:
            pipe.llen(keys.rq_queue_key(q))
        pipe.hgetall(keys.notify_stats)
    res = await pipe.execute()
    now = time.time()
    states, beats, stop = res[: len(symbols)], res[len(symbols)], res[len(symbols) + 1]
    engines = [engine_view(s, st, hb, now, hb_timeout) for s, st, hb in zip(symbols, states, beats, strict=False)]
    snap = Snapshot(now, engines, stop)
    if with_extras:
        snap.recovery = res[len(symbols) + 2]
        snap.retrain = res[len(symbols) + 3]
        snap.queues = {q: int(n) for q, n in zip(RQ_QUEUES, res[len(symbols) + 4:-1], strict=True)}
        snap.notify = res[-1]
        snap.managers = await live_managers(r, keys)
    return snap


async def live_managers(r: aioredis.Redis, keys: Keys) -> list[dict[str, str]]:
    out = []
    async for key in r.scan_iter(match=keys.managers_pattern, count=100):
        info = await r.hgetall(key)  # type: ignore[misc]
        if info:
            out.append({str(k): str(v) for k, v in info.items()})
    return out
