"""Drive real engines into a losing day and time the global stop.

``python -m backend.risk.test_global_stop --daily-loss -4.0 [--engines 15] [--max-daily-loss 3.0]``

Starts Redis (project launcher) and the real manager with N engines replaying a day whose
price falls by ``--daily-loss`` percent; every engine is fully long (buy-and-hold), so the
portfolio crosses ``-max_daily_loss_pct`` on the way down. Measures trigger (the stop
event) -> every engine flat and halted, prints it, and exits 0 only if all engines stopped.
``--restart-check`` then ``kill -9``s an engine and checks its replacement stays halted.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.redis_url import connect
from backend.src.core.settings import REPO_ROOT

NS = "gstop:"
DAY0 = 1_717_200_000_000  # 2024-06-01 00:00 UTC


def write_day(path: Path, daily_loss_pct: float) -> None:
    """40 flat minutes, a 120-minute slide to ``daily_loss_pct``, then flat; one UTC day."""
    rows = ["timestamp,open,high,low,close,volume"]
    price, end = 100.0, 100.0 * (1 + daily_loss_pct / 100)
    for i in range(240):
        if 40 <= i < 160:
            nxt = 100.0 + (end - 100.0) * (i - 39) / 120
        else:
            nxt = price if i < 40 else end
        rows.append(f"{DAY0 + i * 60_000},{price},{max(price, nxt)},{min(price, nxt)},{nxt},100")
        price = nxt
    path.write_text("\n".join(rows) + "\n")


def stop_events(r: redis.Redis) -> list[dict[str, str]]:
    return [{str(k): str(v) for k, v in (f or {}).items()} for _, f in r.xrange(f"{NS}events") or []]


def run(args: argparse.Namespace, tmp: Path) -> tuple[int, float | None]:
    symbols = [f"G{i:02d}USDT" for i in range(args.engines)]
    write_day(tmp / "day.csv", args.daily_loss)
    (tmp / "policy.yaml").write_text(
        f"max_daily_loss_pct: {args.max_daily_loss}\nmax_symbol_exposure_pct: 100\nmax_symbol_risk_pct: 100\n"
        f"max_concurrent_positions: {max(15, args.engines)}\nmax_correlated_positions: 5\n"
        "position_sizing: {method: fixed_fractional, min_position_usd: 10, max_position_usd: 100000}\n")
    (tmp / "engines.yaml").write_text(
        "defaults:\n  strategy: {name: buy_and_hold}\n  size_usd: 10000\n  max_position_usd: 10000\n"
        "  stop_loss_pct: 10\n")  # risk 100 % of equity over a 10 % stop: the full 10,000 position
    server = EmbeddedRedis(tmp / "redis").start()
    r = connect(server.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVIBOT_")}
    env.update({"LEVIBOT_REDIS_URL": server.url, "LEVIBOT_NAMESPACE": NS, "LEVIBOT_DATA_DIR": str(tmp / "data"),
                "LEVIBOT_RISK_POLICY": str(tmp / "policy.yaml"), "LEVIBOT_REPLAY_SPEED": "3000",
                "LEVIBOT_API_ENABLED": "false"})
    mgr = subprocess.Popen([sys.executable, "-m", "backend.src.engine_manager", "--symbols", ",".join(symbols),
                            "--source", f"replay:{tmp / 'day.csv'}", "--config", str(tmp / "engines.yaml")],
                           env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        trigger: float | None = None
        while trigger is None and time.monotonic() < deadline and mgr.poll() is None:
            events = [f for f in stop_events(r) if f.get("type") == "global_stop"]
            if events:
                trigger = float(events[0]["ts"])
                print(f"global stop triggered by {events[0]['symbol']}: {events[0]['reason']}")
            time.sleep(0.002)
        if trigger is None:
            print("global stop never triggered", file=sys.stderr)
            return 1, None
        halted_at: float | None = None
        while halted_at is None and time.monotonic() < deadline:
            states = [r.hgetall(f"{NS}engine:{s}") for s in symbols]
            if all(st.get("halted") and abs(float(st.get("position") or 0)) < 1e-12 for st in states):
                halted_at = time.time()
            time.sleep(0.002)
        if halted_at is None:
            print("not every engine stopped", file=sys.stderr)
            return 1, None
        took = max(0.0, halted_at - trigger)
        pnl = sum(float(r.hget(f"{NS}engine:{s}", "daily_pnl") or 0) for s in symbols)
        print(f"all engines stopped: {len(symbols)} engines flat and halted {took * 1000:.0f} ms after the "
              f"trigger; portfolio daily PnL {pnl:.2f}")
        if args.restart_check:
            pid = int(r.hget(f"{NS}engine:{symbols[0]}", "pid") or 0)
            os.kill(pid, signal.SIGKILL)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 20:
                st = r.hgetall(f"{NS}engine:{symbols[0]}")
                if st.get("status") == "running" and int(st.get("pid") or 0) not in (0, pid) and st.get("halted"):
                    print(f"restarted engine {symbols[0]} still halted: {str(st['halted'])[:60]}...")
                    break
                time.sleep(0.02)
            else:
                print("restarted engine did not come back halted", file=sys.stderr)
                return 1, took
        return 0, took
    finally:
        mgr.terminate()
        mgr.wait(30)
        r.close()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--daily-loss", type=float, default=-4.0, help="the day's price move in percent (negative)")
    ap.add_argument("--max-daily-loss", type=float, default=3.0, help="policy max_daily_loss_pct")
    ap.add_argument("--engines", type=int, default=15)
    ap.add_argument("--restart-check", action="store_true")
    args = ap.parse_args(argv)
    if args.daily_loss >= 0 or args.engines < 1 or args.max_daily_loss <= 0:
        print("test_global_stop: error: --daily-loss must be negative, --engines >= 1, --max-daily-loss > 0",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="levibot-gstop-") as tmp:
        return run(args, Path(tmp))[0]


if __name__ == "__main__":
    sys.exit(main())
