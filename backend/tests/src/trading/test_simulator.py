"""The shared execution model on a real candle file: one fill per signal change, quote-currency sizes,
order entries that trace back to the strategy."""

from __future__ import annotations

import pytest

from backend.risk.policy import load_policy
from backend.src.core.config import SymbolConfig
from backend.src.market.candles import load_candles
from backend.src.trading.simulator import simulate
from backend.src.trading.strategies.baselines import SmaCrossover
from backend.tests.conftest import OHLCV_DIR

POLICY = load_policy()


def signal_changes(closes: list[float], fast: int, slow: int) -> int:
    state, changes = 0, 0
    for i in range(slow - 1, len(closes)):
        f = sum(closes[i - fast + 1 : i + 1]) / fast
        s = sum(closes[i - slow + 1 : i + 1]) / slow
        now = 1 if f > s else 0
        changes += now != state
        state = now
    return changes


def test_sma_trades_once_per_signal_change() -> None:
    candles, _ = load_candles(OHLCV_DIR / "ETH_BTC-5m.csv")
    cfg = SymbolConfig(size_quote=1.0, initial_equity=10.0)
    sim = simulate("ETHBTC", cfg, SmaCrossover(10, 30), candles, POLICY)
    changes = signal_changes([c.close for c in candles], 10, 30)
    assert changes > 50
    assert len(sim.fills) == changes, "no re-sizing while the signal stands"
    sides = [f.side for f in sim.fills]
    assert all(a != b for a, b in zip(sides, sides[1:], strict=False)), "buys and sells alternate"
    orders = sim.journal.of_type("order")
    assert {o["strategy"] for o in orders} == {SmaCrossover(10, 30).fingerprint}
    assert all(o["target"] in (0.0, 1.0) for o in orders)


def test_a_rebalance_band_resizes_only_beyond_it() -> None:
    candles, _ = load_candles(OHLCV_DIR / "ETH_BTC-5m.csv")
    base = SymbolConfig(size_quote=1.0, initial_equity=10.0)
    plain = simulate("ETHBTC", base, SmaCrossover(10, 30), candles, POLICY)
    tight = simulate("ETHBTC", base.model_copy(update={"rebalance_band": 0.0}), SmaCrossover(10, 30), candles, POLICY)
    loose = simulate("ETHBTC", base.model_copy(update={"rebalance_band": 0.5}), SmaCrossover(10, 30), candles, POLICY)
    assert len(tight.fills) > len(loose.fills) >= len(plain.fills)


def test_sizes_are_in_the_quote_currency() -> None:
    candles, _ = load_candles(OHLCV_DIR / "ETH_BTC-5m.csv")
    cfg = SymbolConfig(size_usd=1000, quote_usd=50_000, initial_equity=10.0)
    assert cfg.notional_caps("ETHBTC") == (0.02, 0.1)
    sim = simulate("ETHBTC", cfg, SmaCrossover(10, 30), candles, POLICY)
    first = sim.fills[0]
    assert first.qty * first.price <= 0.02 * 1.001, "1000 USD is 0.02 BTC of notional, not 1000 BTC"
    with pytest.raises(ValueError, match="size_usd: ETHBTC is quoted in BTC, not USD; set size_quote"):
        SymbolConfig(size_usd=1000).notional_caps("ETHBTC")
    assert SymbolConfig(size_usd=700).notional_caps("BTCUSDT") == (700, 5000)


def test_round_trips_group_fills_into_trades() -> None:
    from backend.src.trading.simulator import round_trips  # noqa: PLC0415
    from backend.src.venue.orders import Fill  # noqa: PLC0415

    fills = [Fill("a", "buy", 1.0, 100.0, 0.1, 1, 0), Fill("b", "buy", 1.0, 110.0, 0.1, 2, 0),
             Fill("c", "sell", 2.0, 120.0, 0.2, 3, 0), Fill("d", "buy", 1.0, 50.0, 0.05, 4, 0)]
    trips = round_trips(fills)
    assert len(trips) == 1, "the open position at the end is not a trade yet"
    t = trips[0]
    assert (t["entry_ts"], t["exit_ts"], t["side"], t["qty"]) == (1, 3, "long", 2.0)
    assert t["entry_price"] == 105.0 and t["exit_price"] == 120.0
    assert t["pnl"] == pytest.approx(30.0 - 0.4) and t["return_pct"] == pytest.approx(100 * 29.6 / 210)
