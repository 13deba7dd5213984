"""Research results through the engine's own trading code.

The walk-forward backtest, the tuner and the nightly validation gate turn a model's
predictions into trades with the same decision rule, sizer, trader, fees and slippage as an
engine (``backend.src.trading.simulator``); this module only adapts DataFrames to candles and the
resulting equity curve back to per-bar returns for the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.risk.policy import RiskPolicy
from backend.src.core.config import SymbolConfig
from backend.src.core.types import Candle
from backend.src.market.perpetual import BASELINE_FUNDING
from backend.src.trading.simulator import SimResult, simulate
from backend.src.trading.sizing import FullExposure
from backend.src.trading.strategies.base import Strategy
from backend.src.trading.strategies.decision import DecisionParams, Forecast
from backend.src.trading.strategies.ensemble import PrecomputedEnsemble, opinion

RESEARCH_EQUITY = 10_000.0
FORECAST_COLUMNS = ("prob_up", "weight_share", "confidence", "exp_return", "sigma", "vol")


@dataclass(frozen=True)
class Costs:
    fee_bps: float = 10.0  # the paper venue's default taker fee
    slippage_bps: float = 5.0
    perpetual: bool = False  # traded as a USDT-M perpetual: shorts, funding (the baseline rate), isolated 2x


def research_config(costs: Costs) -> SymbolConfig:
    """A symbol config whose caps do not bind: the risk policy alone sizes, in any quote currency. A perpetual
    pays the baseline funding (0.01 % per 8 h) and posts half the notional (2x), so a whole-equity position fits
    its margin; its stop rules are the strategy's."""
    cfg = SymbolConfig(initial_equity=RESEARCH_EQUITY, size_quote=RESEARCH_EQUITY, max_position_usd=RESEARCH_EQUITY,
                       fee_bps=costs.fee_bps, maker_fee_bps=costs.fee_bps, slippage_bps=costs.slippage_bps)
    if not costs.perpetual:
        return cfg
    return SymbolConfig.model_validate({**cfg.model_dump(), "market": "perpetual", "leverage": 2,
                                        "funding_rate": BASELINE_FUNDING, "liquidation_buffer_atr": 0.0})


def candles_of(df: pd.DataFrame) -> list[Candle]:
    cols = [df[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")]
    return [Candle(int(ts), *vals) for ts, *vals in zip(df.index.to_numpy(), *cols, strict=True)]


def returns_of(sim: SimResult, start_equity: float) -> tuple[pd.Series, np.ndarray]:
    """Per-bar returns of the equity curve, and where a position was held during the bar."""
    eq = np.asarray(sim.equity)
    prev = np.concatenate([[start_equity], eq[:-1]])
    held = np.concatenate([[0.0], (np.asarray(sim.position[:-1]) != 0).astype(float)]) if len(eq) else np.zeros(0)
    return pd.Series(eq / prev - 1, index=pd.Index(sim.ts)), held


def trade(df: pd.DataFrame, strategy: Strategy, symbol: str, costs: Costs, policy: RiskPolicy,
          cfg: SymbolConfig | None = None, *, full: bool = False) -> tuple[pd.Series, np.ndarray, SimResult]:
    """``full``: a target of 1 is the whole equity (``FullExposure``), else the risk policy sizes."""
    cfg = cfg or research_config(costs)
    sim = simulate(symbol, cfg, strategy, candles_of(df), policy,
                   sizer=FullExposure(symbol, policy) if full else None)
    ret, held = returns_of(sim, cfg.initial_equity)
    return ret, held, sim


def trade_predictions(df: pd.DataFrame, pred: pd.DataFrame, decision: DecisionParams, symbol: str, costs: Costs,
                      policy: RiskPolicy, *, full: bool = False) -> tuple[pd.Series, np.ndarray, SimResult]:
    """A model's predictions per bar (``EnsemblePredictor.predict``'s frame, aligned with ``df``)
    traded by the ensemble's decision rule through the engine's trader, read as an engine reads them."""
    pred = pred.reindex(columns=[*FORECAST_COLUMNS], fill_value=np.nan)
    cols = [pred[c].to_numpy(dtype=float) for c in FORECAST_COLUMNS]
    table = {int(ts): (Forecast(opinion(p, w), e, s, v), float(c))
             for ts, p, w, c, e, s, v in zip(df.index.to_numpy(), *cols, strict=True)}
    strategy = PrecomputedEnsemble(table, decision)
    strategy.allow_short = costs.perpetual  # long/short where the market allows it, long/flat on spot
    return trade(df, strategy, symbol, costs, policy, full=full)


def exposure_of(sim: SimResult, df: pd.DataFrame) -> np.ndarray:
    """Per bar, the position's notional at the close as a share of the equity (signed: negative short)."""
    close = df["close"].reindex(pd.Index(sim.ts)).to_numpy(dtype=float)
    eq = np.asarray(sim.equity, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(eq > 0, np.asarray(sim.position, dtype=float) * close / eq, 0.0)


def turnover_of(sim: SimResult, start_equity: float = RESEARCH_EQUITY) -> float:
    """Everything traded (buys and sells), in multiples of the starting equity."""
    return sum(f.qty * f.price for f in sim.fills) / start_equity


def cost_paid(sim: SimResult, costs: Costs, start_equity: float = RESEARCH_EQUITY) -> float:
    """Fees and slippage paid, as a share of the starting equity."""
    slip = costs.slippage_bps / 10_000
    return sum(f.fee + f.qty * f.price * slip / (1 + slip) for f in sim.fills) / start_equity
