"""The vectorized form: the backtester's one ``populate`` over the whole run trades exactly like an engine's
``populate`` over its window after every candle, when the strategy passes the check."""

from __future__ import annotations

import pandas as pd
from levibot_examples.zscore import ZScoreReversion

from backend.risk.policy import RiskPolicy
from backend.src.core.config import SymbolConfig
from backend.src.core.types import Candle
from backend.src.market.candles import SyntheticSource
from backend.src.trading.simulator import simulate
from backend.src.trading.strategies.vector import VectorStrategy, frame_of


class CandleByCandle(ZScoreReversion):
    """The engine's way in a backtest: no whole-run precompute."""

    def precompute(self, candles: list[Candle]) -> None:
        return None


def candles(n: int) -> list[Candle]:
    return SyntheticSource("ETHUSDT", seed=9, interval_s=3600, timeframe="1h", annual_volatility=1.2, price=2000.0,
                           now=1_700_000_000 + n * 3600).warmup(n)


def test_whole_run_and_candle_by_candle_trade_alike() -> None:
    cs, cfg = candles(900), SymbolConfig(size_usd=1000)
    a = simulate("ETHUSDT", cfg, ZScoreReversion(lookback=48), cs[100:], RiskPolicy(), warmup=cs[52:100])
    b = simulate("ETHUSDT", cfg, CandleByCandle(lookback=48), cs[100:], RiskPolicy(), warmup=cs[52:100])
    assert len(a.fills) > 10
    assert [(f.candle_ts, f.side, f.qty, f.price) for f in a.fills] == [(f.candle_ts, f.side, f.qty, f.price)
                                                                         for f in b.fills]


def test_the_frame_and_the_exposed_values() -> None:
    cs = candles(100)
    f = frame_of(cs)
    assert list(f.columns) == ["open", "high", "low", "close", "volume"] and f.index[-1] == cs[-1].ts
    s = ZScoreReversion(lookback=20)
    s.warmup(cs)
    assert set(s.indicators()) == {"z", "target"} and s.warmup_candles == 20


class Broken(VectorStrategy):
    warmup_candles = 5

    def populate(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame  # no target column


def test_a_populate_without_target_is_a_strategy_error_handled_by_on_failed() -> None:
    sim = simulate("ETHUSDT", SymbolConfig(size_usd=1000), Broken(), candles(30), RiskPolicy())
    assert sim.fills == [] and sim.position[-1] == 0
