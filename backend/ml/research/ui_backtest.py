"""Backtests started from the dashboard: the request, what can be chosen, and the RQ job.

The job trades each chosen symbol through the engine's own code (``trading.simulator``): the strategy
warms on the first ``warmup_candles`` of the range and trades the rest from a flat start, beside
buy-and-hold through the same execution model and always-flat. Candles come from a file in the
OHLCV directory or from the synthetic generator the engines use (so a fresh install can backtest
with no data). Progress and the result go to the run's record in Redis (``core/runs.py``).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.src.core.settings import REPO_ROOT, Settings
from backend.src.core.types import Candle
from backend.src.models.backends import Backends

if TYPE_CHECKING:
    from backend.src.core.config import SymbolConfig

STRATEGY_DIR = REPO_ROOT / "backend" / "strategies"
MAX_POINTS = 1500  # per curve sent to the browser
MAX_FILLS = 1000
MEAN_KEYS = ("total_return", "sharpe", "max_drawdown", "trades", "win_rate", "fees", "final_equity")
BUILT_IN = ("sma_crossover", "momentum", "buy_and_hold", "ensemble")


def ohlcv_dir(settings: Settings) -> Path:
    return settings.data_dir / "ohlcv"


def data_files(settings: Settings) -> dict[str, Path]:
    """symbol → candle file in the OHLCV directory (``<SYMBOL>-<tf>.csv|parquet``; first one wins)."""
    from backend.src.market.candles import is_candle_file, symbol_of_file  # noqa: PLC0415

    d = ohlcv_dir(settings)
    files = sorted(p for p in [*d.glob("*.csv"), *d.glob("*.parquet")] if is_candle_file(p)) if d.is_dir() else []
    out: dict[str, Path] = {}
    for f in files:
        out.setdefault(symbol_of_file(f), f)
    return out


def strategy_files() -> list[str]:
    return sorted(p.name for p in STRATEGY_DIR.glob("*.levi.yaml"))


def options(settings: Settings) -> dict[str, Any]:
    return {"strategies": list(BUILT_IN), "levilang": strategy_files(), "files": sorted(data_files(settings)),
            "sources": ["synthetic", "file"], "timeframes": ["1m", "5m", "15m", "1h"]}


FIRST_DAY = dt.date(2009, 1, 3)  # no market has candles before Bitcoin's first block


class BacktestSpec(BaseModel):
    """A backtest request; every field is checked here, so a bad one is a 422 naming it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    symbols: list[str] = Field(min_length=1, max_length=10)
    source: Literal["synthetic", "file"] = "synthetic"
    start: dt.date
    end: dt.date
    timeframe: Literal["1m", "5m", "15m", "1h"] = "5m"  # synthetic candles; a file has its own
    strategy: str = "sma_crossover"  # a built-in name, or a LeviLang file of backend/strategies/
    fee_bps: float = Field(default=10.0, ge=0, le=100)
    slippage_bps: float = Field(default=5.0, ge=0, le=100)
    initial_equity: float = Field(default=10_000.0, gt=0, le=1e9)  # quote currency
    size: float = Field(default=1_000.0, gt=0, le=1e9)  # one entry, quote currency
    market: Literal["spot", "perpetual"] = "spot"  # perpetual: shorts, leverage, funding (0.01 %/8 h), liquidation
    leverage: float = Field(default=1.0, ge=1, le=125)
    allow_short: bool = False  # a built-in strategy's shorts (a LeviLang file says so itself: entry_short)

    @model_validator(mode="after")
    def _check(self) -> BacktestSpec:
        bad = [s for s in self.symbols if not re.fullmatch(r"[A-Z0-9]{2,20}", s)]
        if bad:
            raise ValueError(f"symbols: {bad[0]!r} is not a symbol like BTCUSDT")
        if self.start < FIRST_DAY:
            raise ValueError(f"start: {self.start} is before any market had candles ({FIRST_DAY}: Bitcoin's "
                             "first block)")
        if self.end > dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1):
            raise ValueError(f"end: {self.end} is in the future (no candles yet)")
        if self.end <= self.start:
            raise ValueError("end: must be after start")
        if (self.end - self.start).days > 366:
            raise ValueError("end: at most 366 days after start")
        if self.strategy not in BUILT_IN and self.strategy not in strategy_files():
            raise ValueError(f"strategy: {self.strategy!r} is neither built in ({', '.join(BUILT_IN)}) "
                             "nor a LeviLang file in backend/strategies/")
        if self.market == "spot" and self.leverage != 1:
            raise ValueError("leverage: spot trades without leverage (choose market perpetual)")
        symbol_config(self)  # the strategy against the market: short rules need a perpetual (ValueError names it)
        return self

    def check_data(self, settings: Settings) -> None:
        """Files named by the request exist (checked by the API before the job is queued)."""
        if self.source == "file":
            files = data_files(settings)
            missing = [s for s in self.symbols if s not in files]
            if missing:
                raise ValueError(f"symbols: no candle file for {missing[0]} in {ohlcv_dir(settings)}")

    @property
    def start_ms(self) -> int:
        return int(dt.datetime.combine(self.start, dt.time(), dt.UTC).timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(dt.datetime.combine(self.end, dt.time(), dt.UTC).timestamp() * 1000)


def candles_for(spec: BacktestSpec, symbol: str, settings: Settings, cfg: SymbolConfig) -> list[Candle]:
    """The range's candles: from the symbol's file, or the engines' synthetic feed with ``cfg``'s seed,
    volatility and start price."""
    from backend.src.market.candles import SyntheticSource, load_candles, timeframe_seconds  # noqa: PLC0415

    if spec.source == "file":
        candles, _ = load_candles(data_files(settings)[symbol])
        return [c for c in candles if spec.start_ms <= c.ts < spec.end_ms]
    step = timeframe_seconds(spec.timeframe)
    n = (spec.end_ms - spec.start_ms) // (step * 1000)
    src = SyntheticSource(symbol, seed=cfg.seed, interval_s=step, timeframe=spec.timeframe,
                          annual_volatility=cfg.annual_volatility, price=cfg.start_price, now=spec.end_ms / 1000)
    return src.warmup(int(n))


def thin(xs: list[Any], n: int = MAX_POINTS) -> list[Any]:
    """At most ``n`` evenly spaced items, the last one always kept."""
    if len(xs) <= n:
        return xs
    idx = np.unique(np.linspace(0, len(xs) - 1, n).round().astype(int))
    return [xs[i] for i in idx]


def symbol_config(spec: BacktestSpec) -> SymbolConfig:
    """The engine config a backtest (and its replay through an engine) trades with."""
    from backend.src.core.config import StrategyConfig, SymbolConfig  # noqa: PLC0415
    from backend.src.trading.factory import prepare_symbol  # noqa: PLC0415

    short = {"allow_short": True} if spec.allow_short else {}
    st = StrategyConfig(levilang=str(STRATEGY_DIR / spec.strategy)) if spec.strategy.endswith(".levi.yaml") \
        else StrategyConfig(name=spec.strategy, params=short)
    return prepare_symbol(SymbolConfig(strategy=st, fee_bps=spec.fee_bps, slippage_bps=spec.slippage_bps,
                                       initial_equity=spec.initial_equity, size_quote=spec.size, market=spec.market,
                                       leverage=spec.leverage,
                                       funding_rate=0.0001 if spec.market == "perpetual" else None), REPO_ROOT)


def run_symbol(spec: BacktestSpec, symbol: str, settings: Settings, tick: Any) -> dict[str, Any]:
    from backend.ml.research.strategy_backtest import summarize  # noqa: PLC0415
    from backend.risk.policy import load_policy  # noqa: PLC0415
    from backend.src.trading.factory import build_strategy  # noqa: PLC0415
    from backend.src.trading.simulator import simulate  # noqa: PLC0415
    from backend.src.trading.strategies.baselines import BuyAndHold  # noqa: PLC0415

    cfg = symbol_config(spec)
    strategy = build_strategy(cfg.strategy, settings.models_dir, backends=Backends.of(settings))
    candles = candles_for(spec, symbol, settings, cfg)
    warm = min(strategy.warmup_candles, len(candles) // 2)
    test = candles[warm:]
    if len(test) < 2:
        raise ValueError(f"symbols: {symbol} has {len(candles)} candles in the range; too few to trade")
    policy = load_policy(settings.risk_policy)
    py = 365 * 86400_000 / max(test[1].ts - test[0].ts, 1)
    sim = simulate(symbol, cfg, strategy, test, policy, progress=lambda n: tick(n / len(test)), warmup=candles[:warm])
    hold = simulate(symbol, cfg.model_copy(update={"stop_loss_pct": 0.0, "take_profit_pct": 0.0}), BuyAndHold(),
                    test, policy)
    metrics: dict[str, Any] = {}
    metrics["strategy"], _ = summarize(sim, cfg, py)
    metrics["buy_and_hold"], _ = summarize(hold, cfg, py)
    eq = np.asarray(sim.equity)
    dd = eq / np.maximum.accumulate(eq) - 1
    points = thin(list(range(len(test))))
    return {
        "symbol": symbol, "candles": len(test), "from_ms": test[0].ts, "to_ms": test[-1].ts,
        "strategy_hash": strategy.fingerprint, "metrics": metrics,
        "curve": {"t": [test[i].ts for i in points], "equity": [sim.equity[i] for i in points],
                  "buy_and_hold": [hold.equity[i] for i in points], "drawdown": [float(dd[i]) for i in points]},
        "fills": [{"ts": f.candle_ts, "side": f.side, "qty": f.qty, "price": f.price, "fee": f.fee}
                  for f in sim.fills[-MAX_FILLS:]],
    }


def run_backtest(run_id: str, spec_json: str) -> None:
    """The RQ job: every symbol in turn, progress after each chunk of candles, then the result."""
    from rq.timeouts import JobTimeoutException  # noqa: PLC0415 - the worker's death penalty

    from backend.src.core.keys import Keys  # noqa: PLC0415
    from backend.src.core.runs import RunStore, job_redis  # noqa: PLC0415

    settings = Settings()
    store = RunStore(job_redis(settings), Keys(settings.namespace))
    try:
        spec = BacktestSpec.model_validate_json(spec_json)
        pairs: dict[str, Any] = {}
        for i, sym in enumerate(spec.symbols):
            def tick(frac: float, i: int = i, sym: str = sym) -> None:
                store.progress(run_id, (i + frac) / len(spec.symbols), f"{sym}: {frac:.0%}")
            tick(0.0)
            pairs[sym] = run_symbol(spec, sym, settings, tick)
        mean = {name: {k: float(np.mean([p["metrics"][name][k] for p in pairs.values()]))
                       for k in MEAN_KEYS}
                for name in ("strategy", "buy_and_hold")}
        store.finish(run_id, {"pairs": pairs, "mean": mean})
    except JobTimeoutException:
        store.fail(run_id, f"timed out after {settings.job_timeout_s}s (LEVIBOT_JOB_TIMEOUT_S); "
                           "a shorter range or fewer symbols, or raise the limit")
    except Exception as exc:  # noqa: BLE001 - the run's record shows what went wrong
        store.fail(run_id, f"{type(exc).__name__}: {exc}")
