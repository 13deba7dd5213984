"""The parity panel's job: an engine's session replayed through the backtester, trade by trade.

Inputs, all as the engine left them: the candles it traded since it last started or applied a
config (``market/candle_log``: the session's marker, its strategy's warm-up history, every candle),
its journal, the config the manager published for it and the strategy fingerprint in its status.
The backtester (``trading.simulator``, the same session code) starts from the journal as it stood at
the session's marker — the position, open orders and day marks the engine rebuilt itself from — warms
the strategy on the same history, and trades the same candles with the same config; each pair of new
fills is compared on side (the signal), size, fill price, slippage against the candle's open, and
fee. A session with no differences says so. After a config change that kept the strategy, the
session's warm-up is the recent candles: indicators with infinite memory (EMA, RSI) can differ there.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from backend.src.core.settings import Settings
from backend.src.core.types import Candle
from backend.src.models.backends import Backends
from backend.src.trading.strategies.webhook import TargetLog
from backend.src.venue.orders import Fill

REL_TOL = 1e-9
MAX_ROWS = 500


def journal_entries(path: Path) -> list[dict[str, Any]]:
    """The journal, read without its lock (the engine keeps writing); a torn tail is skipped."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(e, dict) and "type" in e:
            out.append(e)
    return out


def _slip_bps(f: Fill, opens: dict[int, float]) -> float | None:
    o = opens.get(f.candle_ts)
    if not o:
        return None
    return (f.price / o - 1) * 10_000 * (1 if f.side == "buy" else -1)


def _side(f: Fill | None, opens: dict[int, float]) -> dict[str, Any] | None:
    if f is None:
        return None
    slip = _slip_bps(f, opens)
    return {"side": f.side, "qty": f.qty, "price": f.price, "fee": f.fee,
            "slippage_bps": None if slip is None else round(slip, 4)}


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= REL_TOL * max(abs(a), abs(b), 1e-12)


def compare(engine: list[Fill], backtest: list[Fill], candles: list[Candle]) -> dict[str, Any]:
    """Fills paired in order; a row per pair with the fields that differ (none: a match)."""
    opens = {c.ts: c.open for c in candles}
    rows: list[dict[str, Any]] = []
    differ = 0
    e_i = b_i = 0
    while e_i < len(engine) or b_i < len(backtest):
        e = engine[e_i] if e_i < len(engine) else None
        b = backtest[b_i] if b_i < len(backtest) else None
        if e is not None and b is not None and e.candle_ts != b.candle_ts:  # one side has a fill the other lacks
            e, b = (e, None) if e.candle_ts < b.candle_ts else (None, b)
        e_i += e is not None
        b_i += b is not None
        fields: list[str] = []
        if e is None or b is None:
            fields = ["signal"]
        else:
            fields += ["signal"] if e.side != b.side else []
            fields += ["size"] if not _close(e.qty, b.qty) else []
            fields += ["fill price"] if not _close(e.price, b.price) else []
            se, sb = _slip_bps(e, opens), _slip_bps(b, opens)
            fields += ["slippage"] if se is not None and sb is not None and abs(se - sb) > 1e-6 else []
            fields += ["fee"] if not _close(e.fee, b.fee) else []
        differ += bool(fields)
        if len(rows) < MAX_ROWS:
            rows.append({"candle_ts": (e or b).candle_ts, "engine": _side(e, opens),  # type: ignore[union-attr]
                         "backtest": _side(b, opens), "differs": fields})
    return {"rows": rows, "fills_engine": len(engine), "fills_backtest": len(backtest), "differences": differ}


def replay(symbol: str, settings: Settings, config_json: str, strategy_hash: str,
           market: list[Candle] | None = None) -> dict[str, Any]:
    """The comparison for one engine, from the files in the data dir and its published config; with its
    attribution across every recorded session (``span``; ``market``: the market's candles, if known)."""
    from backend.risk.policy import load_policy  # noqa: PLC0415
    from backend.src.core.config import SymbolConfig  # noqa: PLC0415
    from backend.src.market import candle_log  # noqa: PLC0415
    from backend.src.trading.factory import build_strategy  # noqa: PLC0415
    from backend.src.trading.journal import MemoryJournal  # noqa: PLC0415
    from backend.src.trading.simulator import simulate  # noqa: PLC0415

    sessions = candle_log.read(candle_log.path_of(settings.data_dir, symbol))
    if not sessions or not sessions[-1].traded:
        raise ValueError(f"symbol: {symbol} has traded no candles since it last started or changed config")
    cur = sessions[-1]
    cfg = SymbolConfig.model_validate_json(config_json)
    entries = journal_entries(settings.journal_dir / f"{symbol}.jsonl")
    strategy = build_strategy(cfg.strategy, settings.models_dir, backends=Backends.of(settings),
                              signals=TargetLog(entries))
    journal = MemoryJournal()
    journal.entries = [e for e in entries if int(e.get("seq", 0)) <= cur.seq]
    journal.seq = cur.seq
    held = sum(float(e["qty"]) * (1 if e["side"] == "buy" else -1) for e in journal.entries if e["type"] == "fill")
    # the journal is written at once, the candle record once a heartbeat: fills on candles not recorded yet
    # are left to the next comparison (the backtester cannot trade a candle it has not seen)
    last = cur.traded[-1].ts
    engine = [Fill.from_entry(e) for e in entries
              if e["type"] == "fill" and int(e.get("seq", 0)) > cur.seq and int(e.get("candle_ts", 0)) <= last]
    sim = simulate(symbol, cfg, strategy, cur.traded, load_policy(settings.risk_policy), warmup=cur.warmup,
                   journal=journal)
    out = compare(engine, sim.fills, cur.traded)
    out.update(symbol=symbol, candles=len(cur.traded), from_ms=cur.traded[0].ts, to_ms=cur.traded[-1].ts,
               strategy_hash=strategy.fingerprint, engine_strategy_hash=strategy_hash,
               same_strategy=strategy.fingerprint == strategy_hash, sessions=len(sessions),
               position_at_start=round(held, 12))
    out["attribution"] = span(symbol, settings, cfg, sessions, entries, market, reuse=(cur, sim))
    return out


def span(symbol: str, settings: Settings, cfg: Any, sessions: list[Any], entries: list[dict[str, Any]],
         market: list[Candle] | None = None, reuse: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Every session in the candle record as one uninterrupted backtest from the first one's journal state,
    against what the engine did across its restarts and config changes: the gap and its causes. With the
    market's candles (``market``: a downloaded or replayed file) the backtest trades every candle of the
    span, so a candle the engine never got shows as the cause of what it decided after it. ``reuse``: the latest
    session and its replay, which is this backtest when that session is the only one (not run twice)."""
    from backend.ml.research.attribution import Context, attribute  # noqa: PLC0415
    from backend.risk.policy import load_policy  # noqa: PLC0415
    from backend.src.trading.factory import build_strategy  # noqa: PLC0415
    from backend.src.trading.journal import MemoryJournal  # noqa: PLC0415
    from backend.src.trading.simulator import simulate  # noqa: PLC0415

    first = next(s for s in sessions if s.traded)
    by_ts = {c.ts: c for s in sessions for c in s.traded}
    seen = [by_ts[t] for t in sorted(by_ts) if t >= first.traded[0].ts]  # what the engine traded
    last = seen[-1].ts
    within = [c for c in market or [] if seen[0].ts <= c.ts <= last]
    candles = within if {c.ts for c in seen} <= {c.ts for c in within} else seen  # another timeframe: not used
    strategy = build_strategy(cfg.strategy, settings.models_dir, backends=Backends.of(settings),
                              signals=TargetLog(entries))
    if reuse is not None and reuse[0] is first and candles == first.traded:
        sim = reuse[1]
    else:
        journal = MemoryJournal()
        journal.entries = [e for e in entries if int(e.get("seq", 0)) <= first.seq]
        journal.seq = first.seq
        sim = simulate(symbol, cfg, strategy, candles, load_policy(settings.risk_policy), warmup=first.warmup,
                       journal=journal)
    after = [e for e in entries if int(e.get("seq", 0)) > first.seq and int(e.get("candle_ts", 0)) <= last]
    engine = [Fill.from_entry(e) for e in after if e["type"] == "fill"]
    paid = sum(float(e["amount"]) for e in after if e["type"] == "funding")
    paid_bt = sum(float(e["amount"]) for e in sim.journal.entries if e["type"] == "funding" and e["seq"] > first.seq)
    ctx = Context(sessions, seen, strategy.warmup_candles, strategy.fingerprint, strategy.model_version or "",
                  after, cfg.step_size)
    out = attribute(engine, sim.fills, candles[-1].close, paid, paid_bt, ctx)
    out.update(sessions=len(sessions), candles=len(candles), missing=len(candles) - len(seen), from_ms=seen[0].ts,
               to_ms=last,
               restarts=sum(1 for s in sessions[1:] if s.why == "start"),
               config_changes=sum(1 for s in sessions if s.why == "config"))
    return out


def report(symbol: str, settings: Settings, r: Any, market: list[Candle] | None = None) -> dict[str, Any]:
    """The comparison of a running (or stopped) engine: its config and strategy from Redis, its files, the
    market's candles from the data dir's OHLCV folder when it has the symbol (unless ``market`` is given).
    An unexplained drift of at least ``LEVIBOT_PARITY_DRIFT_PCT`` of the symbol's equity raises a
    ``parity_drift`` event (alerted)."""
    from backend.src.core.config import SymbolConfig  # noqa: PLC0415
    from backend.src.core.keys import Keys  # noqa: PLC0415

    keys = Keys(settings.namespace)
    config_json = r.hget(keys.config(symbol), "json")
    state: dict[Any, Any] = r.hgetall(keys.state(symbol))
    if not config_json:
        raise ValueError(f"symbol: no published config for {symbol} (is it managed here?)")
    if market is None:
        market = market_candles(settings, symbol)
    out = replay(symbol, settings, str(config_json), str(state.get("strategy_hash", "")), market)
    a = out["attribution"]
    equity = float(state.get("equity") or 0) or SymbolConfig.model_validate_json(str(config_json)).initial_equity
    a["drift_threshold"] = settings.parity_drift_pct / 100 * equity
    if settings.parity_drift_pct > 0 and abs(a["unexplained"]) >= a["drift_threshold"]:
        r.xadd(keys.events, {"type": "parity_drift", "symbol": symbol, "amount": f"{a['unexplained']:+.2f}",
                             "share": f"{a['unexplained'] / a['gap']:.0%}" if a["gap"] else "-",
                             "threshold": f"{a['drift_threshold']:.2f}", "ts": f"{time.time():.3f}"},
               maxlen=10_000, approximate=True)
    return out


def market_candles(settings: Settings, symbol: str) -> list[Candle] | None:
    """The symbol's file in the data dir's OHLCV folder, if there is one (what the backtest trades)."""
    from backend.ml.research.ui_backtest import data_files  # noqa: PLC0415
    from backend.src.market.candles import load_candles  # noqa: PLC0415

    path = data_files(settings).get(symbol)
    return load_candles(path)[0] if path is not None else None


def run_parity(run_id: str, symbol: str) -> None:
    """The RQ job: ``report`` into the run record."""
    from backend.src.core.keys import Keys  # noqa: PLC0415
    from backend.src.core.runs import RunStore, job_redis  # noqa: PLC0415

    settings = Settings()
    r, keys = job_redis(settings), Keys(settings.namespace)
    store = RunStore(r, keys)
    try:
        store.progress(run_id, 0.1, f"{symbol}: replaying")
        store.finish(run_id, report(symbol, settings, r))
    except Exception as exc:  # noqa: BLE001 - the run's record shows what went wrong
        store.fail(run_id, f"{type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> int:
    """``python -m backend.ml.parity SYMBOL [--ohlcv FILE] [--json]``: the replay and its attribution, as the
    Parity page shows them, from the data dir and Redis (``--ohlcv``: the market's candles for the span);
    exit 2 and one line on bad input."""
    import sys  # noqa: PLC0415

    import redis  # noqa: PLC0415

    from backend.ml.research.attribution import summary  # noqa: PLC0415
    from backend.src.core.cli import OneLineParser  # noqa: PLC0415
    from backend.src.core.errors import EXIT_USAGE  # noqa: PLC0415
    from backend.src.core.redis_launcher import discover_url  # noqa: PLC0415
    from backend.src.core.redis_url import connect  # noqa: PLC0415
    from backend.src.core.settings import cli_path  # noqa: PLC0415
    from backend.src.market.candles import load_candles  # noqa: PLC0415

    ap = OneLineParser(prog="parity", description="Why an engine's PnL differs from its backtest, cause by cause.")
    ap.add_argument("symbol", help="e.g. BTCUSDT")
    ap.add_argument("--ohlcv", type=cli_path, default=None, help="the market's candle file for the span")
    ap.add_argument("--json", action="store_true", help="the whole result as JSON")
    args = ap.parse_args(argv)
    try:
        settings = Settings()
        market = load_candles(args.ohlcv)[0] if args.ohlcv is not None else None
        out = report(args.symbol.upper(), settings, connect(discover_url(settings), timeout=5.0), market)
    except (ValueError, OSError, redis.RedisError) as exc:
        print(f"parity: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(out, indent=1, default=float) if args.json else "\n".join(summary(out)))
    return 0
