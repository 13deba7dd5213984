"""Sizing and limits table for N parallel positions (the sprint plan's check).

``python -m backend.risk.test_manager --symbols 10 --equity 10000 [--policy FILE]``

For N symbols (taken from the policy's correlation groups, then ungrouped ones) with a
spread of volatilities and model probabilities, prints the fixed-fractional and Kelly sizes
and whether the portfolio limits (checked for real in Redis, atomically) admit each position.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from backend.risk.limits import PortfolioLimits
from backend.risk.manager import RiskManager
from backend.risk.policy import DEFAULT_POLICY_PATH, PositionSizing, load_policy
from backend.src.core.errors import UsageError
from backend.src.core.keys import Keys
from backend.src.core.lease import Lease
from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.redis_url import connect
from backend.src.core.settings import cli_path

EXTRA = ["DOGEUSDT", "BNBUSDT", "LINKUSDT", "MATICUSDT", "ATOMUSDT", "UNIUSDT", "FILUSDT", "APTUSDT"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--equity", type=float, default=10_000.0)
    ap.add_argument("--policy", type=cli_path, default=DEFAULT_POLICY_PATH)
    args = ap.parse_args(argv)
    try:
        if args.symbols < 1 or args.equity <= 0:
            raise UsageError("--symbols must be >= 1 and --equity > 0")
        policy = load_policy(args.policy)
    except UsageError as exc:
        print(f"test_manager: error: {exc}", file=sys.stderr)
        return 2
    grouped = [s for syms in policy.correlation_groups.values() for s in syms]
    symbols = (grouped + [s for s in EXTRA if s not in grouped])[: args.symbols]
    symbols += [f"X{i:02d}USDT" for i in range(args.symbols - len(symbols))]
    ff = RiskManager(policy.model_copy(update={"position_sizing": policy.position_sizing.model_copy(
        update={"method": "fixed_fractional"})}))
    kelly = RiskManager(policy.model_copy(update={"position_sizing": PositionSizing(
        **{**policy.position_sizing.model_dump(), "method": "kelly"})}))
    equity_each = args.equity / len(symbols)
    print(f"policy {args.policy.name}: risk {policy.max_symbol_risk_pct}%/position, exposure cap "
          f"{policy.max_symbol_exposure_pct}%, max {policy.max_concurrent_positions} positions, "
          f"{policy.max_correlated_positions} per group; equity {args.equity:,.0f} split over {len(symbols)}")
    print(f"{'symbol':<10} {'group':<9} {'vol':>6} {'p_up':>5} {'fixed-frac':>11} {'kelly':>9} {'slot':<26}")
    with tempfile.TemporaryDirectory(prefix="levibot-risk-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        try:
            r, keys = connect(server.url), Keys("risktable:")
            limits = PortfolioLimits(r, keys)
            admitted = 0
            for i, sym in enumerate(symbols):
                vol, p_up = 0.05 + 0.05 * (i % 5), 0.48 + 0.03 * (i % 6)
                size_ff = ff.calculate_position_size(sym, equity_each, vol, policy.max_symbol_risk_pct / 100)
                size_k = kelly.calculate_position_size(sym, equity_each, vol, prob_up=p_up, confidence=0.8,
                                                       payoff_ratio=1.2)
                lease = Lease(r, keys, sym, "table", i, ttl_s=60)
                lease.acquire()
                d = limits.reserve(sym, lease.token, group=policy.group_of(sym), exposure_usd=size_ff,
                                   max_exposure_usd=equity_each * policy.max_symbol_exposure_pct / 100,
                                   max_total=policy.max_concurrent_positions, max_group=policy.max_correlated_positions)
                admitted += d.allowed
                slot = f"open ({d.total} open)" if d.allowed else f"refused: {d.reason}"
                print(f"{sym:<10} {policy.group_of(sym) or '-':<9} {vol:>6.2%} {p_up:>5.2f} {size_ff:>11,.2f} "
                      f"{size_k:>9,.2f} {slot:<26}")
            print(f"{admitted}/{len(symbols)} positions admitted")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
