"""Weekly rebalancer: inverse-volatility target weights, over/underweight report, new sizes.

``python -m backend.risk.rebalancer [--dry-run] [--threshold 5]`` (cron: ``0 2 * * 1``).

Reads every engine's state from Redis (volatility estimate, position, price) and its
current ``size_usd``; targets weights proportional to 1/volatility (equal risk per symbol)
with the same total budget; reports symbols whose current exposure weight is off target by
more than ``--threshold`` percentage points; writes the new per-symbol sizes to
``<data dir>/rebalance.yaml`` (atomically), which the manager applies on top of the config
and engines hot-reload within a heartbeat. ``--dry-run`` prints the plan only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import yaml

from backend.src.core.errors import EXIT_USAGE
from backend.src.core.keys import Keys
from backend.src.core.redis_launcher import discover_url
from backend.src.core.redis_url import connect
from backend.src.core.settings import Settings


@dataclass(frozen=True)
class Row:
    symbol: str
    volatility: float
    current_weight: float
    target_weight: float
    size_usd: float
    new_size_usd: float

    @property
    def drift_pp(self) -> float:
        return (self.current_weight - self.target_weight) * 100


def plan(states: dict[str, dict[str, str]], sizes: dict[str, float]) -> list[Row]:
    vols = {s: float(st.get("volatility") or 0) for s, st in states.items() if s in sizes}
    usable = {s: v for s, v in vols.items() if v > 0}
    if not usable:
        return []
    inv = {s: 1 / v for s, v in usable.items()}
    total_inv = sum(inv.values())
    exposure = {s: abs(float(states[s].get("position") or 0) * float(states[s].get("last_price") or 0))
                for s in usable}
    total_exp = sum(exposure.values())
    budget = sum(sizes[s] for s in usable)
    return [Row(s, usable[s], exposure[s] / total_exp if total_exp else 0.0, inv[s] / total_inv, sizes[s],
                round(budget * inv[s] / total_inv, 2)) for s in sorted(usable)]


def read_fleet(r: redis.Redis, keys: Keys) -> tuple[dict[str, dict[str, str]], dict[str, float]]:
    symbols = sorted(str(s) for s in r.smembers(keys.engines))  # type: ignore[union-attr]
    states = {s: {str(k): str(v) for k, v in r.hgetall(keys.state(s)).items()} for s in symbols}  # type: ignore[union-attr]
    sizes = {}
    for s in symbols:
        raw = r.hget(keys.config(s), "json")
        if raw and states[s].get("status") == "running":
            sizes[s] = float(json.loads(str(raw))["size_usd"])
    return states, sizes


def write_overlay(path: Path, rows: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "symbols": {row.symbol: {"size_usd": row.new_size_usd} for row in rows}}
    staging = path.with_name(f".{path.name}.tmp")
    with open(staging, "w", encoding="utf-8") as fh:
        fh.write(yaml.safe_dump(body, sort_keys=True))
        fh.flush()
        os.fsync(fh.fileno())
    staging.replace(path)  # atomic: the manager never reads half a file


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    ap.add_argument("--threshold", type=float, default=5.0, help="report drift beyond this many percentage points")
    args = ap.parse_args(argv)
    settings = Settings()
    r = connect(discover_url(settings))
    try:
        states, sizes = read_fleet(r, Keys(settings.namespace))
    except redis.RedisError as exc:
        print(f"rebalancer: error: redis unreachable: {exc}", file=sys.stderr)
        return EXIT_USAGE
    rows = plan(states, sizes)
    if not rows:
        print("rebalancer: no running engine with a volatility estimate yet; nothing to do")
        return 0
    print(f"{'symbol':<10} {'vol/candle':>10} {'weight':>7} {'target':>7} {'drift':>7} {'size_usd':>10} "
          f"{'new':>10}  status")
    for row in rows:
        status = ("OVERWEIGHT" if row.drift_pp > 0 else "UNDERWEIGHT") if abs(row.drift_pp) > args.threshold else "ok"
        print(f"{row.symbol:<10} {row.volatility:>10.5f} {row.current_weight:>7.1%} {row.target_weight:>7.1%} "
              f"{row.drift_pp:>+6.1f}pp {row.size_usd:>10,.2f} {row.new_size_usd:>10,.2f}  {status}")
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    path = settings.data_dir / "rebalance.yaml"
    write_overlay(path, rows)
    print(f"new sizes written to {path}; the manager applies them and engines hot-reload them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
