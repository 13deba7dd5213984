"""``python -m backend.ml.research.backtest --strategy NAME|FILE|MODULE:CLASS --ohlcv-dir DIR [--full ...]``.

A rule strategy (built in, LeviLang, or a Python plugin) through the engine's own trading code:
- held-out (default): the final ``--holdout`` share of each file is traded from a flat start (the
  strategy warmed on the candles before it; nothing is fitted, so nothing is chosen on the test
  window), beside buy-and-hold through the same execution model and always-flat;
- ``--full``: the whole file from a flat start with the engine config — exactly what an engine
  replaying that file with that config does; the fills go to ``<out>/<SYMBOL>/fills.csv``
  (``candle_ts,side,qty,price,fee``), comparable one for one with the engine's journal.
Either way ``<out>/<SYMBOL>/trades.csv`` lists the round trips (entry and exit candle, side, size,
average prices, fees, net PnL, return) and ``report.json`` / ``equity.png`` the figures: long and short
trades and their PnL apart, fees, funding (perpetuals: its own line, from the engine config's funding
file or rate) and liquidations, beside buy-and-hold and flat.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backend.ml.research.backtest_metrics import plot, trading_metrics
from backend.ml.research.trade_sim import returns_of
from backend.risk.policy import load_policy
from backend.src.core.config import StrategyConfig, SymbolConfig, load_engine_config
from backend.src.core.errors import UsageError
from backend.src.core.settings import Settings
from backend.src.market.candles import load_candles, symbol_of_file
from backend.src.market.perpetual import funding_beside, funding_rates
from backend.src.models.backends import Backends
from backend.src.trading.check import CHECK_WINDOW, check_strategy
from backend.src.trading.factory import build_strategy, from_argument, prepare_symbol
from backend.src.trading.simulator import SimResult, round_trips, simulate
from backend.src.trading.strategies.baselines import BuyAndHold

log = logging.getLogger(__name__)


def strategy_config(arg: str, base: StrategyConfig) -> StrategyConfig:
    """``--strategy``: a LeviLang file, a plugin class (``package.module:ClassName``) or a registered or
    installed name (its params from the engine config when it names the same strategy)."""
    same = arg in (base.name, base.python)
    try:
        return from_argument(arg, base.params if same else {}, base.check if same else True)
    except ValueError as exc:
        raise UsageError(f"--strategy: {exc}") from exc


def symbol_config(engine_config: Path | None, symbol: str, strategy_arg: str | None) -> SymbolConfig:
    cfg = load_engine_config(engine_config, [symbol], prepare_symbol)[symbol]
    if strategy_arg is None:
        return cfg
    try:  # the strategy against the symbol's market (short rules need a perpetual)
        return prepare_symbol(cfg.model_copy(update={"strategy": strategy_config(strategy_arg, cfg.strategy)}),
                              Path.cwd())
    except ValueError as exc:
        raise UsageError(f"--strategy: {exc} (--engine-config sets the market)") from exc


def summarize(sim: SimResult, cfg: SymbolConfig, py: float) -> tuple[dict[str, float], pd.Series]:
    ret, held = returns_of(sim, cfg.initial_equity)
    m = trading_metrics(ret, held, py)
    m.update(fills=float(len(sim.fills)), fees=float(sum(f.fee for f in sim.fills)),
             final_equity=float(sim.equity[-1]) if sim.equity else cfg.initial_equity)
    m.update(sides(sim))
    return m, ret


def sides(sim: SimResult) -> dict[str, float]:
    """Long and short round trips and their net PnL apart, funding (+ received), liquidations."""
    trips = round_trips(sim.fills)
    out: dict[str, float] = {}
    for side in ("long", "short"):
        mine = [t for t in trips if t["side"] == side]
        out[f"{side}_trades"] = float(len(mine))
        out[f"{side}_pnl"] = float(sum(float(t["pnl"]) for t in mine))
    out["funding"] = float(sum(float(e["amount"]) for e in sim.journal.of_type("funding")))
    out["liquidations"] = float(sum(1 for e in sim.journal.of_type("fill") if e.get("reason") == "liquidation"))
    return out


def run_file(path: Path, args: Any, settings: Settings, out: Path) -> dict[str, Any]:
    candles, loaded = load_candles(path)
    symbol = symbol_of_file(path)
    try:  # a perpetual's funding history beside its candles, unless the engine config names the funding
        cfg = funding_beside(symbol_config(args.engine_config, symbol, args.strategy), path, symbol)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    policy = load_policy(settings.risk_policy)
    py = 365 * 86400_000 / max(loaded.timeframe_ms, 1)
    strategy = build_strategy(cfg.strategy, settings.models_dir, backends=Backends.of(settings))
    start = 0 if args.full else int(len(candles) * (1 - args.holdout))
    test, warm = candles[start:], candles[max(0, start - strategy.warmup_candles):start]
    if cfg.strategy.python is not None and cfg.strategy.check:  # a plugin is checked before it is traded
        try:
            rep = check_strategy(lambda: build_strategy(cfg.strategy, settings.models_dir), candles[-CHECK_WINDOW:])
        except Exception as exc:  # noqa: BLE001 - as an engine: its errors are then met candle by candle (on_failed)
            log.warning("%s: the check could not run (%s: %s); backtesting it unchecked", symbol,
                        type(exc).__name__, exc)
        else:
            if not rep.ok:
                raise UsageError(f"--strategy: {rep.refusal(cfg.strategy.python)}")
    if cfg.perpetual:  # nothing trades on a guessed funding rate
        gap = funding_rates(cfg).covers(test[0].ts, test[-1].ts)
        if gap:
            raise UsageError(f"funding_file: {gap}")
    sim = simulate(symbol, cfg, strategy, test, policy, source_id=f"replay:{path.name}", warmup=warm)
    report: dict[str, Any] = {"symbol": symbol, "candles": len(test), "from_ms": test[0].ts, "to_ms": test[-1].ts,
                              "market": cfg.market, "leverage": cfg.leverage,
                              "funding_source": funding_rates(cfg).source if cfg.perpetual else "",
                              "strategy": cfg.strategy.levilang or cfg.strategy.name,
                              "strategy_hash": strategy.fingerprint, "model_version": strategy.model_version}
    curves: dict[str, pd.Series] = {}
    report["strategies"] = {}
    report["strategies"]["strategy"], curves["strategy"] = summarize(sim, cfg, py)
    # held unleveraged (1x: a long that cannot be liquidated), through the same execution model
    hold = simulate(symbol, cfg.model_copy(update={"stop_loss_pct": 0.0, "take_profit_pct": 0.0, "leverage": 1.0}),
                    BuyAndHold(), test, policy)
    report["strategies"]["buy_and_hold"], curves["buy_and_hold"] = summarize(hold, cfg, py)
    flat = pd.Series(np.zeros(len(test)), index=pd.Index([c.ts for c in test]))
    report["strategies"]["flat"] = trading_metrics(flat, np.zeros(len(test)), py)
    curves["flat"] = flat
    (out / symbol).mkdir(parents=True, exist_ok=True)
    if args.full:
        sim.write_fills(out / symbol / "fills.csv")
    sim.write_trades(out / symbol / "trades.csv")
    plot(curves, f"{symbol}: {report['strategy']}", out / symbol / "equity.png")
    return report


def run(args: Any, settings: Settings, files: list[Path], out: Path) -> dict[str, Any]:
    summary: dict[str, Any] = {"mode": "full" if args.full else f"held-out final {args.holdout:.0%}", "pairs": {}}
    jobs = max(1, min(int(getattr(args, "jobs", 1) or 1), len(files)))
    if jobs > 1:  # files are independent: one process each, as many at a time as --jobs (fork: nothing re-imported)
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"))
        with pool:
            reports = list(pool.map(run_file, files, *(itertools.repeat(x) for x in (args, settings, out))))
    else:
        reports = [run_file(f, args, settings, out) for f in files]
    for rep in reports:
        summary["pairs"][rep["symbol"]] = rep
        s = rep["strategies"]
        st = s["strategy"]
        log.info("%s: strategy return %+.2f%% sharpe %.2f dd %.3f fills %d | buy&hold %+.2f%% | flat 0", rep["symbol"],
                 100 * st["total_return"], st["sharpe"], st["max_drawdown"], st["fills"],
                 100 * s["buy_and_hold"]["total_return"])
        log.info("%s:   closed trades (net of fees): long %d %+.2f, short %d %+.2f | fees %.2f | funding %+.2f | "
                 "liquidations %d",
                 rep["symbol"], st["long_trades"], st["long_pnl"], st["short_trades"], st["short_pnl"], st["fees"],
                 st["funding"], st["liquidations"])
    pairs = summary["pairs"].values()
    summary["mean"] = {name: {k: float(np.mean([p["strategies"][name][k] for p in pairs]))
                              for k in ("total_return", "sharpe", "max_drawdown", "trades")}
                       for name in ("strategy", "buy_and_hold", "flat")}
    for k in ("long_trades", "short_trades", "long_pnl", "short_pnl", "fees", "funding", "liquidations"):
        summary["mean"]["strategy"][k] = float(np.mean([p["strategies"]["strategy"][k] for p in pairs]))
    for name, m in summary["mean"].items():
        log.info("MEAN %-13s %s", name, " ".join(f"{k} {v:.4f}" for k, v in m.items()))
    (out / "report.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary
