"""The engine in-process, against the real Redis, with a controlled clock."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
import redis

from backend.src.core.config import SourceSpec, StrategyConfig, SymbolConfig
from backend.src.core.errors import LeaseError
from backend.src.core.keys import Keys
from backend.src.core.lease import Lease
from backend.src.core.redis_url import connect
from backend.src.core.settings import Settings
from backend.src.engine.engine import Engine, LeaseLost
from backend.src.engine.spec import EngineSpec

DAY_MS = 86_400_000


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def zigzag_csv(path: Path, n: int = 120, start_ms: int = DAY_MS - 60 * 60_000) -> Path:
    """1m candles that swing up and down every 10 candles and cross UTC midnight."""
    rows = ["timestamp,open,high,low,close,volume"]
    price = 100.0
    for i in range(n):
        step = 1.0 if (i // 10) % 2 == 0 else -1.0
        o, c = price, price + step
        rows.append(f"{start_ms + i * 60_000},{o},{max(o, c) + 0.1},{min(o, c) - 0.1},{c},10")
        price = c
    path.write_text("\n".join(rows) + "\n")
    return path


def make(settings: Settings, source: SourceSpec, r: redis.Redis, clock: Clock, owner: str = "me") -> Engine:
    cfg = SymbolConfig(strategy=StrategyConfig(fast=2, slow=5), size_usd=1000, max_position_usd=5000)
    return Engine(EngineSpec("BTCUSDT", settings, cfg, source, owner), r, clock=clock)


@pytest.fixture
def replay(tmp_path: Path) -> SourceSpec:
    return SourceSpec("replay", zigzag_csv(tmp_path / "BTCUSDT-1m.csv"))


def run_until(engine: Engine, clock: Clock, seconds: float, dt: float = 0.05) -> None:
    end = clock.t + seconds
    while clock.t < end:
        clock.t += dt
        engine.step()


def test_trades_journal_and_state(settings: Settings, r: redis.Redis, replay: SourceSpec) -> None:
    s = settings.model_copy(update={"replay_speed": 600.0})  # one 1m candle per 0.1 s
    clock = Clock(1000.0)
    e = make(s, replay, r, clock)
    e.start()
    run_until(e, clock, 6.0)
    fills = e.journal.of_type("fill")
    assert len(fills) >= 4, "the zigzag makes the SMA cross several times"
    assert {f["side"] for f in fills} == {"buy", "sell"}
    assert all(f["gen"] == e.gen for f in fills)
    st = r.hgetall(Keys(s.namespace).state("BTCUSDT"))
    assert st["status"] == "running" and float(st["position"]) == pytest.approx(e.book.qty)
    assert st["last_trade"].endswith("Z")
    days = e.journal.of_type("day")
    assert [d["day"] for d in days] == ["1970-01-01", "1970-01-02"], "a day mark at UTC midnight"
    assert e.book.daily_pnl == pytest.approx(e.book.equity - days[-1]["equity"])
    e.shutdown()
    assert r.hget(Keys(s.namespace).state("BTCUSDT"), "status") == "stopped"


def test_restart_rebuilds_position_and_never_retrades_a_candle(
    settings: Settings, r: redis.Redis, replay: SourceSpec
) -> None:
    s = settings.model_copy(update={"replay_speed": 600.0})
    clock = Clock(1000.0)
    e1 = make(s, replay, r, clock)
    e1.start()
    run_until(e1, clock, 3.0)
    qty, n = e1.book.qty, len(e1.journal.of_type("fill"))
    last_candle = e1.trader.last_candle
    e1.journal.close()  # as if killed: no shutdown, the kernel drops the flock
    r.delete(Keys(s.namespace).state("BTCUSDT"))  # lose Redis' cursor too: the journal alone must do
    e2 = make(s, replay, r, clock)
    assert e2.book.qty == pytest.approx(qty)
    e2.start()
    assert e2.gen > e1.gen
    run_until(e2, clock, 6.0)
    fills = e2.journal.of_type("fill")
    assert len(fills) > n
    later = [f["candle_ts"] for f in fills[n:]]
    assert min(later) > last_candle and len(set(later)) == len(later)


def test_stale_engine_is_fenced_off(settings: Settings, r: redis.Redis, replay: SourceSpec) -> None:
    clock = Clock(1000.0)
    e = make(settings, replay, r, clock)
    e.start()
    newer = Lease(r, Keys(settings.namespace), "BTCUSDT", "me", 999, 5.0)
    newer.acquire()
    with pytest.raises(LeaseLost, match="lease lost"):
        e.beat(force=True)
    with pytest.raises(LeaseLost, match="fenced off"):
        e.check_fence()


def test_symbol_leased_by_another_owner_is_fatal(settings: Settings, r: redis.Redis, replay: SourceSpec) -> None:
    Lease(r, Keys(settings.namespace), "BTCUSDT", "other-host:/data", 4242, 30.0).acquire()
    e = make(settings, replay, r, Clock(1000.0))
    with pytest.raises(LeaseError, match="other-host"):
        e.start()


def test_keeps_trading_when_redis_is_down(settings: Settings, r: redis.Redis, replay: SourceSpec) -> None:
    s = settings.model_copy(update={"replay_speed": 600.0})
    clock = Clock(1000.0)
    e = make(s, replay, r, clock)
    e.start()
    e.r = connect("redis://127.0.0.1:1/0")  # Redis vanishes
    run_until(e, clock, 6.0)
    assert not e.redis_ok
    assert len(e.journal.of_type("fill")) >= 4
    e.r = r  # back
    e.beat(force=True)
    assert e.redis_ok
    assert float(r.hget(Keys(s.namespace).state("BTCUSDT"), "position") or 0) == pytest.approx(e.book.qty)


def test_orphaned_when_the_lifeline_breaks(settings: Settings, r: redis.Redis, replay: SourceSpec) -> None:
    reader, writer = mp.Pipe(duplex=False)
    e = make(settings, replay, r, Clock(1000.0))
    e.lifeline = reader
    assert not e.orphaned()
    writer.close()
    assert e.orphaned()


def test_synthetic_engine_runs(settings: Settings, r: redis.Redis) -> None:
    clock = Clock(10_000.0)
    e = make(settings, SourceSpec("synthetic"), r, clock)
    e.start()
    run_until(e, clock, 2.0, dt=settings.synthetic_interval_s)
    assert e.candles >= 35 and e.book.last_price > 0


def test_journal_from_another_source_is_refused(settings: Settings, r: redis.Redis, replay: SourceSpec) -> None:
    from backend.src.core.errors import JournalError

    clock = Clock(10_000.0)
    e = make(settings, SourceSpec("synthetic"), r, clock)
    e.start()
    run_until(e, clock, 0.2, dt=settings.synthetic_interval_s)  # writes the day mark
    e.shutdown()
    size = e.journal.path.stat().st_size
    with pytest.raises(JournalError, match="holds positions from source 'synthetic'"):
        make(settings, replay, r, clock)
    assert e.journal.path.stat().st_size == size


def test_carried_position_over_a_portfolio_limit_is_closed_on_the_first_candle(
    settings: Settings, r: redis.Redis, replay: SourceSpec
) -> None:
    from backend.risk.limits import PortfolioLimits
    from backend.risk.policy import RiskPolicy
    from backend.src.engine.engine import CARRIED_OVER_LIMIT

    s = settings.model_copy(update={"replay_speed": 600.0})
    keys = Keys(s.namespace)
    clock = Clock(1000.0)
    e1 = make(s, replay, r, clock)
    e1.start()
    while not e1.book.qty:
        run_until(e1, clock, 0.1)
    e1.shutdown()
    # While it was down, another engine took the only portfolio slot the policy allows.
    Lease(r, keys, "ETHUSDT", "me", 4242, 30.0).acquire()
    assert PortfolioLimits(r, keys).reserve("ETHUSDT", "x", group="", exposure_usd=100, max_exposure_usd=1e9,
                                            max_total=1, max_group=5).allowed
    cfg = SymbolConfig(strategy=StrategyConfig(fast=2, slow=5), size_usd=1000, max_position_usd=5000)
    tight = RiskPolicy(max_concurrent_positions=1)
    e2 = Engine(EngineSpec("BTCUSDT", s, cfg, replay, "me", tight), r, clock=clock)
    assert e2.book.qty
    e2.start()
    assert e2.close_carried
    run_until(e2, clock, 0.15)  # the first candle
    closing = [f for f in e2.journal.of_type("fill") if f.get("reason") == CARRIED_OVER_LIMIT]
    assert len(closing) == 1 and e2.book.qty == 0
    assert "BTCUSDT" not in PortfolioLimits(r, keys).slots()
    e2.shutdown()
    e3 = Engine(EngineSpec("BTCUSDT", s, cfg, replay, "me", tight), r, clock=clock)
    e3.start()
    assert not e3.close_carried, "flat after the close: nothing to close on the next restart"
    e3.shutdown()


def test_a_kept_carried_position_holds_its_slot(settings: Settings, r: redis.Redis, replay: SourceSpec) -> None:
    from backend.risk.limits import PortfolioLimits

    s = settings.model_copy(update={"replay_speed": 600.0})
    clock = Clock(1000.0)
    e1 = make(s, replay, r, clock)
    e1.start()
    while not e1.book.qty:
        run_until(e1, clock, 0.1)
    e1.journal.close()  # killed
    e2 = make(s, replay, r, clock)
    e2.start()
    assert not e2.close_carried
    slot = PortfolioLimits(r, Keys(s.namespace)).slots()["BTCUSDT"]
    assert slot.endswith(e2.lease.token), "re-reserved under the new lease"
    e2.shutdown()
