"""The read-only commands: /status /engines /pnl /positions /risk /strategy /model /parity /help, and the
one-line answer to an unknown command. Everything is read from Redis (and, for the model registry
and the journals' day openings, the data dir of the manager the bot runs beside)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from telegram import Message, Update
from telegram.ext import ContextTypes

from backend.src.analytics import queries
from backend.src.analytics.store import StoreError, connect
from backend.src.bot import pnl, views
from backend.src.bot.deps import Deps, deps, reply, symbol_arg
from backend.src.core import fleet
from backend.src.models.registry import HISTORY, Registry


async def snapshot(d: Deps) -> fleet.Snapshot:
    return await fleet.take(d.r, d.keys, d.settings.heartbeat_timeout_s)


async def status(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    await reply(update, views.status_text(await snapshot(deps(ctx))))


async def engines(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    await reply(update, views.engines_text(await snapshot(deps(ctx))))


async def positions(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    await reply(update, views.positions_text(await snapshot(deps(ctx))))


async def risk(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    d = deps(ctx)
    flag = cast(str | None, await d.r.get(d.keys.global_stop))
    slots = cast(dict[str, str], await d.r.hgetall(d.keys.risk_slots))  # type: ignore[misc]
    policy = await d.r.hget(d.keys.risk_policy, "json")  # type: ignore[misc]
    await reply(update, views.risk_text(flag, slots, json.loads(policy) if policy else None))


async def strategy(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    d = deps(ctx)
    snap = await snapshot(d)
    if ctx.args:
        sym = symbol_arg(ctx.args)
        chosen = [e for e in snap.engines if e["symbol"] == sym]
        if not chosen:
            await reply(update, f"unknown symbol {ctx.args[0][:20]} — usage: /strategy [SYMBOL]")
            return
    else:
        chosen = snap.engines
    if not chosen:
        await reply(update, "No engines are registered yet.")
        return
    texts = []
    for e in chosen:
        raw = await d.r.hget(d.keys.config(e["symbol"]), "json")  # type: ignore[misc]
        texts.append(views.strategy_text(e, json.loads(raw) if raw else None))
    await reply(update, "\n".join(texts))


async def parity(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    """Why a symbol's live PnL differs from its backtest: the parity replay and its attribution by cause, run
    here in a thread over the data dir the bot shares with the manager (as ``python -m backend.ml.parity``)."""
    d = deps(ctx)
    sym = symbol_arg(ctx.args or [])
    if not sym or not await d.r.sismember(d.keys.engines, sym):  # type: ignore[misc]
        await reply(update, "usage: /parity SYMBOL (a symbol this fleet trades)")
        return
    from backend.ml.research.attribution import summary  # noqa: PLC0415 - the replay's stack, on first use only
    from backend.ml.research.parity import report  # noqa: PLC0415

    try:
        out = await asyncio.to_thread(report, sym, d.settings, d.sync)
    except (ValueError, OSError) as exc:
        await reply(update, f"/parity {sym}: {str(exc).splitlines()[0]}")
        return
    await reply(update, "\n".join(summary(out)))


def registry_summary(d: Deps) -> tuple[str | None, dict[str, Any], dict[str, Any] | None]:
    reg = Registry(d.settings.models_dir)
    current = reg.current()
    meta = reg.metadata(current) if current else {}
    path = reg.root / HISTORY
    lines = path.read_text().splitlines() if path.exists() else []
    last = json.loads(lines[-1]) if lines and lines[-1].strip() else None
    return current, meta, last


async def model(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    d = deps(ctx)
    current, meta, last = await asyncio.to_thread(registry_summary, d)
    retrain = cast(dict[str, str], await d.r.hgetall(d.keys.retrain))  # type: ignore[misc]
    await reply(update, views.model_text(current, meta, retrain, last))


async def pnl_command(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    d = deps(ctx)
    window = (ctx.args or ["today"])[0].lower()
    if window not in pnl.WINDOWS or len(ctx.args or []) > 1:
        await reply(update, "usage: /pnl [today|7d|30d]")
        return
    snap = await snapshot(d)
    syms = [e["symbol"] for e in snap.engines]
    marks = await asyncio.to_thread(day_openings, d, syms)
    rows = pnl.rows(snap.engines, marks, pnl.WINDOWS[window])
    unpriced = [e["symbol"] for e in snap.engines if e["usd_per_quote"] is None]
    await reply(update, views.pnl_text(window, rows, unpriced))
    pipe = d.r.pipeline(transaction=False)
    for s in syms:
        pipe.xrevrange(d.keys.history(s), count=d.settings.history_len)
    recent = await pipe.execute()
    per_symbol, rates = {}, {}
    for e, row, hist in zip(snap.engines, rows, recent, strict=True):
        if e["usd_per_quote"] is None or row["since"] == "—":
            continue
        rates[e["symbol"]] = e["usd_per_quote"]
        pts = [(int(f["ts"]) / 1000, float(f["eq"])) for _, f in reversed(hist) if "eq" in f]
        per_symbol[e["symbol"]] = pnl.series(marks[e["symbol"]], pts, row["since"])
    png = await asyncio.to_thread(pnl.chart_png, per_symbol, rates, f"Portfolio equity (USD), {window}")
    if png is not None:
        await cast(Message, update.effective_message).reply_photo(png, caption=f"Portfolio equity, {window}",
                                                                  do_quote=False)


def day_openings(d: Deps, symbols: list[str]) -> dict[str, list[tuple[str, float]]]:
    """The engines' day openings from the analytics store; from the journals when it is not there."""
    try:
        store = connect(d.settings)
        try:
            return queries.day_marks(store, symbols)
        finally:
            store.close()
    except StoreError:
        return {s: pnl.day_marks(d.settings.journal_dir / f"{s}.jsonl") for s in symbols}


async def help_command(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    await reply(update, views.help_text())


async def unknown(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    text = (cast(Message, update.effective_message).text or "").split()[0][:40]
    await reply(update, f"unknown command {text} — /help lists the commands")
