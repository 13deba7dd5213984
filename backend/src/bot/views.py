"""What the bot says: plain text built from the fleet read model, the risk state, the configs and
the model registry. Pure functions (no I/O), so every answer is tested as text. Plain text, not
Markdown or HTML: engine errors and log lines go out as they are, nothing to escape or inject."""

from __future__ import annotations

import datetime as dt
from typing import Any

from backend.src.core.fleet import Snapshot

MAX_MESSAGE = 4000  # Telegram's limit is 4096 characters a message
STATUS_ICON = {"running": "🟢", "starting": "🟡", "backoff": "🟡", "stopping": "🟡", "stopped": "⚪",
               "crashed": "🔴", "hung": "🔴", "failed": "⛔"}

COMMANDS: list[tuple[str, str]] = [
    ("status", "fleet summary and every engine"),
    ("engines", "each engine in detail"),
    ("pnl [today|7d|30d]", "PnL per symbol and total, with an equity chart"),
    ("positions", "open positions"),
    ("risk", "risk policy, open slots, global stop"),
    ("strategy [SYMBOL]", "strategy, parameters and model of a symbol (or all)"),
    ("model", "production model, its metrics, the last retrain"),
    ("parity SYMBOL", "why live differs from the backtest: the PnL gap by cause"),
    ("restart SYMBOL", "restart an engine (admins)"),
    ("start SYMBOL", "start a stopped engine (admins)"),
    ("stop SYMBOL", "stop an engine (admins, confirmed)"),
    ("globalstop", "close every position and refuse entries (admins, confirmed)"),
    ("clearstop", "clear the global stop (admins, confirmed)"),
    ("promote VERSION", "make a model version production (admins, confirmed)"),
    ("rollback", "back to the previous production model (admins, confirmed)"),
    ("help", "this list"),
]


def money(v: float, sign: bool = False) -> str:
    out = f"{v:+,.2f}" if sign else f"{v:,.2f}"
    return out.replace("-0.00", "0.00").replace("+0.00", "0.00")


def price(v: float | None) -> str:
    return "?" if not v else f"{v:.8g}"


def help_text() -> str:
    return "LeviBot commands:\n" + "\n".join(f"/{c} — {d}" for c, d in COMMANDS)


def chunks(text: str, size: int = MAX_MESSAGE) -> list[str]:
    """Split on line ends into messages Telegram accepts."""
    out, cur = [], ""
    for line in text.splitlines():
        line = line[:size]
        if cur and len(cur) + 1 + len(line) > size:
            out.append(cur)
            cur = line
        else:
            cur = f"{cur}\n{line}" if cur else line
    return [*out, cur] if cur else out


def _totals_line(snap: Snapshot) -> str:
    t = snap.totals()
    line = f"Equity ${money(t['equity'])} · PnL today {money(t['daily_pnl'], True)} · total {money(t['pnl'], True)} USD"
    if t["unpriced"]:
        line += f"\n(not in USD totals, no rate: {', '.join(t['unpriced'])})"
    return line


def _stop_line(snap: Snapshot) -> str | None:
    if snap.global_stop is None:
        return None
    day, _, reason = snap.global_stop.partition("|")
    return f"🚨 GLOBAL STOP ({day}): {reason}"


def status_text(snap: Snapshot) -> str:
    if not snap.engines:
        return "No engines are registered yet."
    counts = {k: v for k, v in snap.counts().items() if v}
    head = f"LeviBot: {len(snap.engines)} engines — " + ", ".join(f"{v} {k}" for k, v in counts.items())
    lines = [head, _totals_line(snap)]
    if stop := _stop_line(snap):
        lines.append(stop)
    down = [e for e in snap.engines if e["status"] != "running" or e["stalled"]]
    if down:
        lines.append("Not running:")
        for e in down:
            why = "stalled (no candle)" if e["status"] == "running" else e["status"]
            err = f": {e['last_error']}" if e["last_error"] else ""
            lines.append(f"• {e['symbol']} {why}, {e['restarts']} restarts{err}")
    lines.append("Engines:")
    for e in snap.engines:
        lines.append(f"{STATUS_ICON.get(e['status'], '❔')} {e['symbol']} {e['status']} · pos {e['position']:g} · "
                     f"today {money(e['daily_pnl'], True)} {e['quote'] or ''}".rstrip())
    return "\n".join(lines)


def engines_text(snap: Snapshot) -> str:
    if not snap.engines:
        return "No engines are registered yet."
    out = []
    for e in snap.engines:
        hb = "—" if e["last_heartbeat_age_s"] is None else f"{e['last_heartbeat_age_s']:.1f}s ago"
        out.append(f"{STATUS_ICON.get(e['status'], '❔')} {e['symbol']}: {e['status']}"
                   f"{' (stalled)' if e['stalled'] else ''}, pid {e['pid'] or '—'}, up {e['uptime']}, "
                   f"{e['restarts']} restarts, heartbeat {hb}\n"
                   f"   equity {money(e['equity'])} {e['quote'] or ''} · PnL {money(e['pnl'], True)} · "
                   f"strategy {e['strategy'] or '—'} · model {e['model_version'] or '—'}"
                   + (f"\n   last error: {e['last_error']}" if e["last_error"] else ""))
    return "\n".join(out)


def positions_text(snap: Snapshot) -> str:
    open_ = [e for e in snap.engines if e["position"]]
    if not open_:
        return "No open positions."
    lines = [f"{len(open_)} open positions:"]
    for e in open_:
        side = "long" if e["position"] > 0 else "short"
        entry, last = e["avg_price"], e["last_price"]
        move = f" ({(last / entry - 1) * (1 if e['position'] > 0 else -1):+.2%})" if entry and last else ""
        lines.append(f"• {e['symbol']} {side} {abs(e['position']):g} @ {price(entry)} → {price(last)}{move} · "
                     f"PnL {money(e['pnl'], True)} {e['quote'] or ''}".rstrip())
        if e.get("market") == "perpetual":
            liq = e.get("liquidation_price")
            lines.append(f"   {e['leverage']:g}x isolated · liquidation {price(liq) if liq else 'none'} · "
                         f"margin {money(e['margin'] or 0)} · funding {money(e['funding'], True)}")
    return "\n".join(lines)


def risk_text(flag: str | None, slots: dict[str, str], policy: dict[str, Any] | None) -> str:
    lines = []
    if flag:
        day, _, reason = flag.partition("|")
        lines.append(f"🚨 GLOBAL STOP ({day}): {reason}")
    else:
        lines.append("Global stop: off")
    if policy is None:
        lines.append("Policy: not published yet (no manager has started)")
        return "\n".join(lines)
    groups: dict[str, int] = {}
    for v in slots.values():
        g = v.split("|")[0]
        if g:
            groups[g] = groups.get(g, 0) + 1
    lines += [
        f"Open positions: {len(slots)} / {policy['max_concurrent_positions']}",
        f"Daily loss stop: -{policy['max_daily_loss_pct']}% of the portfolio",
        f"Per symbol: risk {policy['max_symbol_risk_pct']}%, exposure {policy['max_symbol_exposure_pct']}%",
        f"Sizing: {policy['position_sizing']['method']}, ${money(policy['position_sizing']['min_position_usd'])}"
        f"–${money(policy['position_sizing']['max_position_usd'])}",
    ]
    for g, syms in sorted(policy.get("correlation_groups", {}).items()):
        lines.append(f"Group {g}: {groups.get(g, 0)} / {policy['max_correlated_positions']} open ({', '.join(syms)})")
    return "\n".join(lines)


def strategy_text(engine: dict[str, Any], config: dict[str, Any] | None) -> str:
    strat = (config or {}).get("strategy") or {}
    name = strat.get("name") or engine["strategy"] or "?"
    if engine["strategy"] and engine["strategy"] != name and not strat.get("levilang"):
        name = f"{name}: trading as {engine['strategy']}"  # e.g. the ensemble's SMA fallback
    if strat.get("levilang"):
        name = f"LeviLang {engine['strategy'] or strat['levilang']}"
    params = strat.get("params") or {}
    lines = [f"{engine['symbol']}: {name}"]
    if params:
        lines.append("  params: " + ", ".join(f"{k}={v}" for k, v in sorted(params.items())))
    if engine["strategy_hash"]:
        lines.append(f"  version {engine['strategy_hash'][:12]}")
    lines.append(f"  model {engine['model_version'] or '— (none loaded)'}")
    return "\n".join(lines)


MODEL_SHOWN = ("train_date", "data_range", "timeframe", "backtest_sharpe", "backtest_win_rate", "backtest_max_drawdown",
               "accuracy")


def model_text(current: str | None, meta: dict[str, Any], retrain: dict[str, str],
               last_promotion: dict[str, Any] | None) -> str:
    lines = [f"Production model: {current}" if current else "Production model: none (engines use their fallback)"]
    for k in MODEL_SHOWN:
        if meta.get(k) is not None:
            v = meta[k]
            lines.append(f"  {k}: {round(v, 4) if isinstance(v, float) else v}")
    if last_promotion:
        lines.append(f"Last change: {last_promotion.get('action', 'promote')} to {last_promotion.get('version')} "
                     f"({_when(last_promotion.get('at'))})")
    if retrain.get("last_status"):
        lines.append(f"Last retrain: {retrain['last_status']} {_when(retrain.get('last_run_at'))}, "
                     f"{float(retrain.get('last_duration_s') or 0):.0f}s"
                     + (f" — {retrain['last_detail']}" if retrain.get("last_detail") else ""))
        lines.append("Retrains: " + ", ".join(f"{k.removesuffix('_total')} {retrain[k]}"
                                              for k in ("success_total", "rejected_total", "failure_total")
                                              if k in retrain))
    else:
        lines.append("Last retrain: none recorded")
    return "\n".join(lines)


def _when(ts: object) -> str:
    try:
        return dt.datetime.fromtimestamp(float(str(ts)), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        return "?"


def pnl_text(window: str, rows: list[dict[str, Any]], unpriced: list[str]) -> str:
    """rows: symbol, pnl (quote), usd (or None), since (day)."""
    if not rows:
        return "No engines are registered yet."
    total = sum(r["usd"] for r in rows if r["usd"] is not None)
    lines = [f"PnL {window} (USD total {money(total, True)}):"]
    for r in rows:
        usd = f" (${money(r['usd'], True)})" if r["usd"] is not None and r["quote"] not in ("USD", "USDT") else ""
        lines.append(f"• {r['symbol']}: {money(r['pnl'], True)} {r['quote'] or ''}{usd} since {r['since']}")
    if unpriced:
        lines.append(f"(not in the total, no USD rate: {', '.join(unpriced)})")
    return "\n".join(lines)
