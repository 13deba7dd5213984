"""Failover benchmark: ``python -m backend.scripts.bench_failover --managers 3 --per-manager 10 --rounds 3``.

Starts a Redis with the project's launcher and M real manager CLIs in one pool (``--pool``), each with
its own data dir, on M x N synthetic symbols; waits until every manager runs its fair share and the
engines have traded; then, per round, ``kill -9``s one manager's whole process tree (manager,
forkserver, engines) at once and measures, per symbol it ran, the time from the kill to the first
heartbeat of an engine under another manager (the heartbeat's own timestamp, same host clock).
Target: under the lease TTL (``--lease-ttl``, the managers' ``LEVIBOT_LEASE_TTL_S``) + 2 s.
Checks that nothing was lost or applied twice: the new
owner's journal starts with exactly the entries the dead manager's engine wrote and acted on (an entry
written to the dead host's file but killed before it reached the Redis stream was never acted on and
is counted apart), and the position the new engine started with (its "engine running" log record)
equals the position those entries give. The killed manager is started again (it rejoins the pool
and gets its share back) before the next round. Prints min/median/p95/max over all symbols.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.redis_url import connect
from backend.src.core.settings import REPO_ROOT
from backend.src.supervisor.engine_record import default_owner
from backend.src.trading.book import PositionBook

NS = "benchpool:"
CONFIG = """
defaults:
  strategy: {name: sma_crossover, fast: 2, slow: 5}
  size_usd: 1000
  annual_volatility: 3.0
"""


@dataclass
class Member:
    name: str
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    tree: list[psutil.Process] = field(default_factory=list)

    @property
    def owner(self) -> str:
        return default_owner(self.data_dir)  # how the manager names itself


class PoolFleet:
    """M managers of one pool on one Redis (used by the benchmark and the failover test)."""

    def __init__(self, root: Path, url: str, symbols: list[str], managers: int, *, pool: str = "bench",
                 ns: str = NS, env: dict[str, str] | None = None) -> None:
        self.root, self.url, self.symbols, self.pool, self.ns = root, url, symbols, pool, ns
        self.config = root / "engines.yaml"
        self.config.write_text(CONFIG, encoding="utf-8")
        self.members = [Member(f"m{i}", root / f"m{i}") for i in range(managers)]
        base = {k: v for k, v in os.environ.items() if not k.startswith("LEVIBOT_")}
        base.update({"LEVIBOT_REDIS_URL": url, "LEVIBOT_NAMESPACE": ns, "LEVIBOT_SYNTHETIC_INTERVAL_S": "0.2",
                     "LEVIBOT_API_ENABLED": "false", "LEVIBOT_ANALYTICS_ENABLED": "false", "LEVIBOT_WORKERS": "0",
                     "LEVIBOT_BOT_ENABLED": "false",
                     "LEVIBOT_RISK_POLICY": str(REPO_ROOT / "backend" / "tests" / "fixtures" /
                                                "policy_permissive.yaml")})
        self.env = {**base, **(env or {})}
        self.r = connect(url, timeout=5.0)

    def start(self, m: Member, *args: str) -> None:
        m.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "backend.src.engine_manager", "--pool", self.pool, "--config", str(self.config),
             "--symbols", ",".join(self.symbols), "--data-dir", str(m.data_dir), *args],
            env=self.env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                m.proc.terminate()
        for m in self.members:
            if m.proc is not None:
                try:
                    m.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.kill_tree(m)

    def claims(self) -> dict[str, str]:
        values = self.r.mget([f"{self.ns}claim:{s}" for s in self.symbols])
        return {s: str(v) for s, v in zip(self.symbols, values, strict=True) if v}

    def heartbeats(self) -> dict[str, tuple[int, float]]:
        values = self.r.mget([f"{self.ns}hb:{s}" for s in self.symbols])
        out = {}
        for s, v in zip(self.symbols, values, strict=True):
            if v:
                pid, _gen, ts = str(v).split(":")
                out[s] = (int(pid), float(ts))
        return out

    def balanced(self) -> bool:
        """Every symbol heartbeats and every live member runs its share (within one)."""
        live = [m for m in self.members if m.proc is not None and m.proc.poll() is None]
        claims, beats = self.claims(), self.heartbeats()
        if len(claims) < len(self.symbols) or len(beats) < len(self.symbols):
            return False
        counts = [sum(1 for o in claims.values() if o == m.owner) for m in live]
        return max(counts) - min(counts) <= 1 and sum(counts) == len(self.symbols)

    def wait(self, cond: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.05)

    def kill_tree(self, m: Member) -> float:
        """``kill -9`` the manager and every process under it at once; the wall time of the kill."""
        if m.proc is None:
            raise SystemExit(f"bench: {m.name} is not running")
        root = psutil.Process(m.proc.pid)
        tree = [root, *root.children(recursive=True)]
        for p in tree:
            p.suspend()  # nothing in the tree acts between the first and the last kill
        killed_at = time.time()
        for p in tree:
            os.kill(p.pid, signal.SIGKILL)
        m.proc.wait()
        psutil.wait_procs(tree, timeout=10)
        m.tree = tree
        return killed_at

    def owner_of(self, owner: str) -> Member:
        return next(m for m in self.members if m.owner == owner)


def journal(data_dir: Path, symbol: str) -> list[dict[str, Any]]:
    path = data_dir / "journal" / f"{symbol}.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def position(entries: list[dict[str, Any]], symbol: str) -> float:
    b = PositionBook(symbol, initial_equity=10_000)
    b.rebuild(entries)  # type: ignore[arg-type]
    return b.qty


def started_position(data_dir: Path, symbol: str, after: float) -> float | None:
    """The position in the first "engine running" record of ``symbol``'s engine logged after ``after``."""
    for path in sorted((data_dir / "logs").glob(f"engine-{symbol}*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            when = dt.datetime.fromisoformat(rec["ts"]).timestamp()
            if rec.get("msg") == "engine running" and when >= after - 0.001:
                return float(rec["position"])
    return None


@dataclass
class Takeover:
    symbol: str
    seconds: float
    entries: int  # journal entries the dead engine had acted on
    in_flight: int  # written to the dead host's file, never reached the stream (never acted on): at most 1
    same_entries: bool
    position_before: float
    position_after: float | None


def stream_entries(r: redis.Redis, ns: str, symbol: str) -> list[dict[str, Any]]:
    return [json.loads(f["e"]) for _, f in r.xrange(f"{ns}journal:{symbol}")]  # type: ignore[index,union-attr]


def one_round(fleet: PoolFleet, victim: Member, ttl: float) -> list[Takeover]:
    ran = sorted(s for s, o in fleet.claims().items() if o == victim.owner)
    killed_at = fleet.kill_tree(victim)
    dead = {p.pid for p in victim.tree}
    before = {s: journal(victim.data_dir, s) for s in ran}
    back: dict[str, float] = {}

    def all_back() -> bool:
        beats, claims = fleet.heartbeats(), fleet.claims()
        for s in ran:
            hb = beats.get(s)
            if s not in back and hb and hb[0] not in dead and claims.get(s, victim.owner) != victim.owner:
                back[s] = hb[1] - killed_at
        return len(back) == len(ran)

    fleet.wait(all_back, ttl + 60, "the dead manager's symbols to heartbeat elsewhere")
    out = []
    for s in ran:
        new_owner = fleet.owner_of(fleet.claims()[s])
        fleet.wait(lambda s=s, o=new_owner: started_position(o.data_dir, s, killed_at) is not None, 20,
                   f"{s}'s engine log")
        streamed = stream_entries(fleet.r, fleet.ns, s)
        old = before[s]
        # what the dead engine acted on: its entries that reached the stream (the next one may be its own
        # last, in-flight write, or already the new owner's entry of the same seq)
        pairs = zip(old, streamed, strict=False)
        k = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(old), len(streamed)))
        acted = old[:k]
        new = journal(new_owner.data_dir, s)[:k]
        out.append(Takeover(s, back[s], k, len(old) - k, new == acted,
                            position(acted, s), started_position(new_owner.data_dir, s, killed_at)))
    return out


def pctl(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q * len(xs))) - 1))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--managers", type=int, default=3)
    ap.add_argument("--per-manager", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trade-s", type=float, default=8.0, help="seconds of trading before each kill")
    ap.add_argument("--lease-ttl", type=float, default=10.0, help="LEVIBOT_LEASE_TTL_S of the managers (default 10)")
    args = ap.parse_args(argv)
    if args.managers < 2 or args.per_manager < 1 or args.rounds < 1 or args.lease_ttl <= 0.5:
        print("bench: error: --managers >= 2, --per-manager >= 1, --rounds >= 1, --lease-ttl > 0.5", file=sys.stderr)
        return 2
    ttl = args.lease_ttl
    symbols = [f"F{i:02d}USDT" for i in range(args.managers * args.per_manager)]
    results: list[Takeover] = []
    with tempfile.TemporaryDirectory(prefix="levibot-bench-failover-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        fleet = PoolFleet(Path(tmp), server.url, symbols, args.managers, env={"LEVIBOT_LEASE_TTL_S": str(ttl)})
        try:
            t0 = time.monotonic()
            for m in fleet.members:
                fleet.start(m)
            fleet.wait(fleet.balanced, 120, "every manager to run its share")
            print(f"{args.managers} managers x {args.per_manager} symbols balanced in {time.monotonic() - t0:.1f}s "
                  f"(lease TTL {ttl:g}s)")
            for n in range(args.rounds):
                time.sleep(args.trade_s)
                victim = fleet.members[n % len(fleet.members)]
                got = one_round(fleet, victim, ttl)
                results += got
                worst = max(t.seconds for t in got)
                print(f"round {n + 1}: killed {victim.name} ({len(got)} symbols): all heartbeating elsewhere after "
                      f"{worst:.2f}s; entries carried {sum(t.entries for t in got)}, in flight "
                      f"{sum(t.in_flight for t in got)}, journals equal {all(t.same_entries for t in got)}, "
                      f"positions equal {all(t.position_after == t.position_before for t in got)}")
                fleet.start(victim)
                fleet.wait(fleet.balanced, 120, "the restarted manager to get its share back")
        finally:
            fleet.stop()
            server.stop()
    xs = [t.seconds for t in results]
    print(f"kill -9 of a manager tree -> symbol heartbeating under another manager: n={len(xs)} "
          f"min={min(xs):.2f}s median={statistics.median(xs):.2f}s p95={pctl(xs, 0.95):.2f}s max={max(xs):.2f}s")
    lost = [t.symbol for t in results
            if not t.same_entries or t.position_after != t.position_before or t.in_flight > 1]
    ok = max(xs) < ttl + 2 and not lost
    print(f"target: every symbol back within lease TTL + 2 s = {ttl + 2:g}s, nothing lost or doubled: "
          f"{'PASS' if ok else 'FAIL'}" + (f" (differs: {', '.join(lost)})" if lost else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
