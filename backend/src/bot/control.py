"""The control commands, admins only: /restart /start (at once), /stop /globalstop /clearstop /promote
/rollback (after a confirm button). Engine and model actions go to the managers through the same
durable command stream as the API's (``core/commands.py``); the global stop is the same Redis flag
the engines check and the API clears (``risk/global_stop.py``)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Coroutine
from typing import cast

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update, User
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from backend.risk import global_stop
from backend.src.bot.confirm import Pending
from backend.src.bot.deps import Deps, deps, reply, symbol_arg
from backend.src.core import commands, fleet
from backend.src.core.commands import Action

WAIT_S = 5.0  # for the manager's answer
ENGINE_WAIT_S = 15.0  # for the engine to reach the state asked for (a start waits for its first heartbeat)
VERSION = re.compile(r"^ensemble_\d{8}_\d{6}x*$")
USAGE = {"restart": "/restart SYMBOL", "start": "/start SYMBOL", "stop": "/stop SYMBOL",
         "promote": "/promote VERSION (e.g. ensemble_20261130_020000)"}


def is_admin(update: Update, d: Deps, what: str) -> bool:
    user = cast(User, update.effective_user)
    if user.id in d.access.admins:
        return True
    d.access.refuse("user", user.id, what)
    return False


async def owner_of(d: Deps, symbol: str) -> str | None:
    return cast(str | None, await d.r.hget(d.keys.state(symbol), "owner"))  # type: ignore[misc]


async def manager(d: Deps) -> str | None:
    managers = await fleet.live_managers(d.r, d.keys)
    return managers[0]["owner"] if managers else None


async def run_command(d: Deps, owner: str, action: Action, symbol: str, arg: str, ident: str) -> dict[str, str]:
    cid = d.keys.chat_command_id(ident)
    await asyncio.to_thread(commands.send, d.sync, d.keys, owner, action, symbol, arg=arg, command_id=cid)
    res = await commands.wait_result(d.r, d.keys, cid, WAIT_S)
    return {**res, "id": cid}


async def engine_after(d: Deps, symbol: str, action: str, sent_at: float) -> str:
    """What the engine did once the manager carried the command out: stopped, or running again as a
    process started after the command was sent (a restart handled twice still finds its own)."""
    deadline = time.monotonic() + ENGINE_WAIT_S
    while time.monotonic() < deadline:
        status, pid, started = cast(list[str | None], await d.r.hmget(  # type: ignore[misc]
            d.keys.state(symbol), ["status", "pid", "started_at"]))
        if action == "stop" and status in ("stopped", "failed"):
            return f"{symbol} stopped"
        if action != "stop" and status == "running" and pid and float(started or 0) >= sent_at:
            return f"{symbol} {'restarted' if action == 'restart' else 'started'}: running, pid {pid}"
        await asyncio.sleep(0.1)
    return f"{symbol}: the manager is on it ({action}); /engines shows when it is done"


def outcome(action: str, target: str, res: dict[str, str]) -> str | None:
    """None when the manager has done it; else the one line to say."""
    status = res.get("status", "pending")
    if status == "done":
        return None
    if status == "pending":
        return f"⏳ {action} {target}: queued, the manager has not answered yet (command {res['id'][:8]})"
    return f"❌ {action} {target}: {res.get('detail') or status}"


async def engine_command(d: Deps, action: Action, symbol: str, ident: str) -> str:
    owner = await owner_of(d, symbol)
    if not owner:
        return f"unknown symbol {symbol}"
    res = await run_command(d, owner, action, symbol, "", ident)
    return outcome(action, symbol, res) or "✅ " + await engine_after(d, symbol, action, float(res["sent_at"]))


async def restart(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    await _now(update, ctx, "restart")


async def start(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    await _now(update, ctx, "start")


async def _now(update: Update, ctx: ContextTypes.DEFAULT_TYPE, action: Action) -> None:
    d = deps(ctx)
    if not is_admin(update, d, f"/{action}"):
        return
    sym = symbol_arg(ctx.args)
    if sym is None or len(ctx.args or []) != 1:
        await reply(update, f"usage: {USAGE[action]}")
        return
    await reply(update, await engine_command(d, action, sym, f"u{update.update_id}"))


# --------------------------------------------------------------------------- confirmed commands


async def stop(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    d = deps(ctx)
    if not is_admin(update, d, "/stop"):
        return
    sym = symbol_arg(ctx.args)
    if sym is None or len(ctx.args or []) != 1:
        await reply(update, f"usage: {USAGE['stop']}")
        return
    if not await owner_of(d, sym):
        await reply(update, f"unknown symbol {sym}")
        return
    await ask(update, d, "stop", sym, f"Stop {sym}? It stays stopped until /start.")


async def promote(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    d = deps(ctx)
    if not is_admin(update, d, "/promote"):
        return
    version = (ctx.args or [""])[0]
    if len(ctx.args or []) != 1 or not VERSION.match(version):
        await reply(update, f"usage: {USAGE['promote']}")
        return
    await ask(update, d, "promote", version, f"Promote model {version} to production? Engines load it at once.")


PROMPTS = {
    "globalstop": "GLOBAL STOP? Every engine closes its position and refuses entries until /clearstop or the "
                  "next trading day.",
    "clearstop": "Clear the global stop? Entries are allowed again and the loss trigger stays off for the rest "
                 "of that day.",
    "rollback": "Roll back to the previous production model? Engines load it at once.",
}


def confirmed(action: str) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[None, None, None]]:
    """The handler of a command without arguments that only asks for confirmation."""

    async def handler(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
        d = deps(ctx)
        if is_admin(update, d, f"/{action}"):
            await ask(update, d, action, "", PROMPTS[action])

    return handler


globalstop, clearstop, rollback = confirmed("globalstop"), confirmed("clearstop"), confirmed("rollback")


async def ask(update: Update, d: Deps, action: str, arg: str, prompt: str) -> None:
    chat, user = cast(int, update.effective_chat and update.effective_chat.id), cast(User, update.effective_user)
    token = await d.confirms.ask(action, arg, chat, user.id)
    buttons = InlineKeyboardMarkup([[InlineKeyboardButton("✅ Confirm", callback_data=f"ok:{token}"),
                                     InlineKeyboardButton("✖ Cancel", callback_data=f"no:{token}")]])
    await cast(Message, update.effective_message).reply_text(
        f"{prompt}\n(confirm within {d.settings.telegram_confirm_s:.0f} s)", reply_markup=buttons, do_quote=False)


async def carry_out(d: Deps, p: Pending) -> str:
    ident = f"c{p.token}"
    if p.action == "stop":
        return await engine_command(d, "stop", p.arg, ident)
    if p.action == "globalstop":
        by = f"telegram user {p.user}"
        set_now = await asyncio.to_thread(global_stop.engage, d.sync, d.keys, by=by)
        return "🚨 global stop set: engines close their positions and refuse entries" if set_now else \
            "a global stop was already set; left as it is"
    if p.action == "clearstop":
        was, day = await asyncio.to_thread(global_stop.clear_current, d.sync, d.keys, by=f"telegram user {p.user}")
        return f"✅ global stop cleared (loss trigger off until the end of {day})" if was else \
            "no global stop was set"
    owner = await manager(d)
    if owner is None:
        return "❌ no live manager to carry it out"
    action = cast(Action, p.action)
    res = await run_command(d, owner, action, "", p.arg, ident)
    return outcome(p.action, p.arg or "model", res) or f"✅ {p.action}: {res.get('detail', 'done')}"


async def button(update: Update, ctx: ContextTypes.DEFAULT_TYPE) -> None:
    d = deps(ctx)
    q = cast(CallbackQuery, update.callback_query)
    verdict, _, token = (q.data or "").partition(":")
    if not is_admin(update, d, "a confirm button"):
        await q.answer("Only admins can confirm.")
        return
    chat = cast(int, update.effective_chat and update.effective_chat.id)
    status, pending = await d.confirms.decide(token, q.from_user.id, chat, verdict == "ok")
    prompt = q.message.text if isinstance(q.message, Message) and q.message.text else ""
    if status == "confirmed" and pending is not None:
        await q.answer("Confirmed")
        await edit(q, f"{prompt}\n→ {await carry_out(d, pending)}")
    elif status == "cancelled":
        await q.answer("Cancelled")
        await edit(q, f"{prompt}\n→ cancelled, nothing done")
    elif status == "not_yours":
        await q.answer("Only the admin who asked can confirm this.")
    else:
        await q.answer("Expired: nothing done.")
        await edit(q, f"{prompt}\n→ expired, nothing done")


async def edit(q: CallbackQuery, text: str) -> None:
    """The prompt's message gets the outcome (and loses its buttons); a press handled again after a
    restart finds it already edited, which Telegram refuses as "not modified": nothing to do then."""
    try:
        await q.edit_message_text(text)
    except BadRequest as exc:
        if "not modified" not in exc.message:
            raise
