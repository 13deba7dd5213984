"""The Telegram bot end to end: the real manager starts the real bot process, pointed at a local Bot
API stand-in (``fakes/bot_api.py``); commands, allow-lists, confirm buttons, restarts, floods."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis

from backend.src.bot.webhook import HEADER
from backend.src.core.redis_launcher import EmbeddedRedis, free_port
from backend.tests.conftest import ManagerProc, fast_env, wait_for
from backend.tests.fakes.bot_api import BotApi
from backend.tests.integration.helpers import running_pid, state, wait_running

pytestmark = pytest.mark.integration
TOKEN = "4242:SECRET-token-abc"
ADMIN, ADMIN2, TRADER, STRANGER = 1001, 1003, 1002, 6666
DESK, GROUP, OTHER = 555, -100777, 999  # two allowed chats (one a group), one not


@pytest.fixture
def api() -> Iterator[BotApi]:
    server = BotApi(TOKEN)
    yield server
    server.close()


def bot_env(api: BotApi, **extra: object) -> dict[str, object]:
    return {"telegram_bot_token": TOKEN, "telegram_chat_id": f"{DESK},{GROUP}",
            "telegram_admins": f"{ADMIN},{ADMIN2}", "telegram_api_base": api.url, "telegram_poll_timeout_s": 1,
            "telegram_confirm_s": 4, **extra}


def bot_proc(m: ManagerProc) -> psutil.Process | None:
    for p in m.descendants():
        try:
            if "backend.src.bot" in p.cmdline():
                return p
        except psutil.NoSuchProcess:
            continue
    return None


def ask(api: BotApi, text: str, chat: int = DESK, user: int = ADMIN, n: int = 1,
        timeout: float = 20.0) -> list[dict[str, Any]]:
    """Say ``text`` and wait for the ``n`` next messages the bot sends to the chat (alerts aside)."""
    before = len(replies(api, chat))
    api.say(chat, user, text)
    deadline = time.monotonic() + timeout
    while len(got := replies(api, chat)) < before + n:
        assert time.monotonic() < deadline, f"no answer to {text!r}: {got[before:]}"
        time.sleep(0.02)
    return got[before:]


def replies(api: BotApi, chat: int) -> list[dict[str, Any]]:
    """What the bot said in a chat: messages and photos (not edits, not the manager's alerts)."""
    alert = re.compile(r"^(💥|🛑|✅ \S+ recovered|⏸|🚨 GLOBAL STOP:|⚠️|❌ nightly|🧠|🔍)")
    return [m for m in api.to(chat) if m["method"] != "editMessageText" and not alert.match(m["text"])]


@pytest.fixture
def fleet(start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str, api: BotApi) -> ManagerProc:
    m = start_manager(["BTCUSDT", "ETHUSDT"], analytics_enabled="true", **bot_env(api))  # /pnl reads the store
    wait_running(r, ns, ["BTCUSDT", "ETHUSDT"])
    wait_for(lambda: any(c["method"] == "getUpdates" for c in api.calls), 20, what="the bot polling")
    return m


def test_reads_answer_the_allowed_chats(fleet: ManagerProc, api: BotApi, data_dir: Path) -> None:
    (status,) = ask(api, "/status")
    assert status["text"].startswith("LeviBot: 2 engines — 2 running")
    assert "BTCUSDT running" in status["text"] and "ETHUSDT running" in status["text"]
    (engines,) = ask(api, "/engines", chat=GROUP, user=TRADER)  # any member of an allowed chat may read
    assert re.search(r"BTCUSDT: running, pid \d+", engines["text"])
    (help_,) = ask(api, "/help")
    assert all(f"/{c}" in help_["text"] for c in ("status", "pnl", "globalstop", "clearstop", "rollback"))
    assert "open positions" in ask(api, "/positions")[0]["text"].lower()
    (risk,) = ask(api, "/risk")
    assert "Global stop: off" in risk["text"] and "Open positions:" in risk["text"]
    (strat,) = ask(api, "/strategy btcusdt")
    assert strat["text"].startswith("BTCUSDT: sma_crossover") and "fast=2" in strat["text"]
    assert ask(api, "/strategy")[0]["text"].count("sma_crossover") == 2
    assert "Production model: none" in ask(api, "/model")[0]["text"]
    (par,) = ask(api, "/parity btcusdt", timeout=60)  # the replay and its attribution, in the bot's thread
    assert par["text"].startswith("BTCUSDT: latest session") and "gap" in par["text"], par["text"]
    assert ask(api, "/parity NOPE")[0]["text"].startswith("usage: /parity SYMBOL")
    time.sleep(1.5)  # a few candles traded, so the day has opened and equity has moved
    text, photo = ask(api, "/pnl 7d", n=2)
    assert text["text"].startswith("PnL 7d (USD total") and "BTCUSDT:" in text["text"]
    assert photo["method"] == "sendPhoto" and photo["photo_bytes"]["png"] and photo["photo_bytes"]["bytes"] > 5000
    # unknown and malformed commands: one line of usage each
    assert ask(api, "/frobnicate")[0]["text"] == "unknown command /frobnicate — /help lists the commands"
    assert ask(api, "/pnl 2y")[0]["text"] == "usage: /pnl [today|7d|30d]"
    assert ask(api, "/restart")[0]["text"] == "usage: /restart SYMBOL"
    assert ask(api, "/strategy NOPE")[0]["text"].startswith("unknown symbol NOPE")
    assert ask(api, "/promote latest")[0]["text"].startswith("usage: /promote VERSION")
    # the token is in no log line of any process
    logs = "".join(p.read_text() for p in (data_dir / "logs").glob("*.jsonl"))
    assert "bot up as @levibot_test_bot" in logs and TOKEN not in logs and TOKEN.split(":")[1] not in logs


def test_control_only_from_admins_in_allowed_chats(fleet: ManagerProc, api: BotApi, r: redis.Redis, ns: str,
                                                   data_dir: Path) -> None:
    pid = running_pid(r, ns, "BTCUSDT")
    for chat, user in ((DESK, TRADER), (OTHER, ADMIN), (DESK, TRADER)):  # not an admin; not an allowed chat
        api.say(chat, user, "/restart BTCUSDT")
    api.say(OTHER, STRANGER, "/status")
    (done,) = ask(api, "/help")  # answered after the three above: they were handled (and ignored)
    assert done["text"].startswith("LeviBot commands")
    assert running_pid(r, ns, "BTCUSDT") == pid and replies(api, OTHER) == []
    assert [m["text"] for m in replies(api, DESK)].count(done["text"]) == 1 and len(replies(api, DESK)) == 1
    logs = "".join(p.read_text() for p in (data_dir / "logs").glob("bot-*.jsonl"))
    assert logs.count("ignored /restart from user 1002") == 1, "logged once per user"
    assert logs.count("from chat 999") == 1
    (said,) = ask(api, "/restart BTCUSDT")
    new = running_pid(r, ns, "BTCUSDT")
    assert new and new != pid and said["text"] == f"✅ BTCUSDT restarted: running, pid {new}"


def press(api: BotApi, prompt: dict[str, Any], verdict: str, chat: int = DESK, user: int = ADMIN) -> str:
    """Press a prompt's button and return the prompt's text once the bot has edited it."""
    token = re.search(r"[0-9a-f]{16}", str(prompt["reply_markup"]))
    assert token, prompt
    edits = len([m for m in api.to(chat) if m["method"] == "editMessageText"])
    api.press(chat, user, {"message_id": prompt["message_id"], "text": prompt["text"]}, f"{verdict}:{token.group()}")
    wait_for(lambda: len([m for m in api.to(chat) if m["method"] == "editMessageText"]) > edits, 20,
             what="the prompt edited")
    return str([m for m in api.to(chat) if m["method"] == "editMessageText"][-1]["text"])


def test_destructive_commands_need_a_confirm_button(fleet: ManagerProc, api: BotApi, r: redis.Redis,
                                                    ns: str) -> None:
    (prompt,) = ask(api, "/stop ETHUSDT")
    assert prompt["text"].startswith("Stop ETHUSDT?") and "Confirm" in str(prompt["reply_markup"])
    assert press(api, prompt, "no").endswith("→ cancelled, nothing done")
    assert state(r, ns, "ETHUSDT")["status"] == "running"
    (prompt,) = ask(api, "/stop ETHUSDT")
    answered = len(api.answered)
    api.press(DESK, ADMIN2, {"message_id": prompt["message_id"], "text": prompt["text"]},
              "ok:" + re.findall(r"[0-9a-f]{16}", str(prompt["reply_markup"]))[0])
    wait_for(lambda: len(api.answered) > answered, 10, what="the other admin's press answered")
    assert api.answered[-1]["text"] == "Only the admin who asked can confirm this."
    assert press(api, prompt, "ok").endswith("→ ✅ ETHUSDT stopped")
    assert state(r, ns, "ETHUSDT")["status"] == "stopped"
    # expired: pressed after LEVIBOT_TELEGRAM_CONFIRM_S (4 s here)
    (prompt,) = ask(api, "/globalstop")
    time.sleep(4.3)
    assert press(api, prompt, "ok").endswith("→ expired, nothing done")
    assert r.get(f"{ns}risk:global_stop") is None
    (prompt,) = ask(api, "/globalstop")
    assert "global stop set" in press(api, prompt, "ok")
    assert "manual stop by telegram user 1001" in str(r.get(f"{ns}risk:global_stop"))
    assert "GLOBAL STOP" in ask(api, "/risk")[0]["text"]
    (prompt,) = ask(api, "/clearstop")
    assert "global stop cleared" in press(api, prompt, "ok")
    assert r.get(f"{ns}risk:global_stop") is None
    # model commands go through the manager, which answers (no such version here)
    (prompt,) = ask(api, "/promote ensemble_20990101_000000")
    assert "❌ promote ensemble_20990101_000000" in press(api, prompt, "ok")
    (prompt,) = ask(api, "/rollback")
    assert "❌ rollback" in press(api, prompt, "ok")
    (started,) = ask(api, "/start ETHUSDT")
    assert started["text"].startswith("✅ ETHUSDT started: running, pid")


def test_restarted_bot_loses_and_repeats_nothing(fleet: ManagerProc, api: BotApi, r: redis.Redis,
                                                 ns: str) -> None:
    # 1. killed while idle, mid-conversation: a prompt is open, updates arrive while it is down
    (prompt,) = ask(api, "/stop ETHUSDT")
    bot = bot_proc(fleet)
    assert bot is not None
    os.kill(bot.pid, signal.SIGKILL)
    token = re.findall(r"[0-9a-f]{16}", str(prompt["reply_markup"]))[0]
    api.press(DESK, ADMIN, {"message_id": prompt["message_id"], "text": prompt["text"]}, f"ok:{token}")
    for i in range(5):
        api.say(DESK, TRADER, f"/nope{i}")
    wait_for(lambda: (b := bot_proc(fleet)) is not None and b.pid != bot.pid, 20, what="the bot restarted")
    wait_for(lambda: sum("/nope4" in m["text"] for m in replies(api, DESK)) == 1, 20, what="the backlog answered")
    texts = [m["text"] for m in replies(api, DESK)]
    assert [t for t in texts if "unknown command" in t] == [
        f"unknown command /nope{i} — /help lists the commands" for i in range(5)]
    wait_for(lambda: state(r, ns, "ETHUSDT")["status"] == "stopped", 15, what="the confirmed stop")
    # 2. killed while carrying out a command (the manager has done it, the bot waits for the new pid):
    #    handled again after the restart, the command is not queued twice
    pid, restarts = running_pid(r, ns, "BTCUSDT"), int(state(r, ns, "BTCUSDT").get("restarts") or 0)
    bot = bot_proc(fleet)
    assert bot is not None
    api.say(DESK, ADMIN, "/restart BTCUSDT")
    wait_for(lambda: state(r, ns, "BTCUSDT").get("last_command", "").startswith("restart: done"), 15,
             what="the manager carried it out")
    os.kill(bot.pid, signal.SIGKILL)
    said = wait_for(lambda: [m for m in replies(api, DESK) if "BTCUSDT restarted" in m["text"]], 30,
                    what="the answer after the bot's restart")
    time.sleep(1.0)
    assert len([m for m in replies(api, DESK) if "BTCUSDT restarted" in m["text"]]) == 1
    new = running_pid(r, ns, "BTCUSDT")
    assert new != pid and f"pid {new}" in said[0]["text"]  # type: ignore[index]
    commands = [f for _, f in r.xrange(next(iter(r.scan_iter(f"{ns}commands:*"))))
                if f.get("action") == "restart" and f.get("symbol") == "BTCUSDT"]
    assert len(commands) == 1, "queued once though handled twice"
    assert int(state(r, ns, "BTCUSDT").get("restarts") or 0) <= restarts + 1


def test_flood_of_100_answered_in_order_within_limits(fleet: ManagerProc, api: BotApi) -> None:
    api.plan["getUpdates"].extend(["502", "garbage"])  # the Bot API hiccups: the bot backs off and goes on
    api.plan["sendMessage"].extend(["ok"] * 40 + ["429"])  # one flood-control answer mid-way: waited out
    t0 = time.monotonic()
    for i in range(100):
        api.say(DESK, TRADER, f"/q{i}")
    got = api.wait_sent(DESK, 100, timeout=60)
    took = time.monotonic() - t0
    texts = [m["text"] for m in got if "unknown command" in m["text"]]
    assert texts == [f"unknown command /q{i} — /help lists the commands" for i in range(100)], "each once, in order"
    sends = [c for c in api.calls if c["method"] == "sendMessage"]
    i429 = next(i for i, c in enumerate(sends) if c["mode"] == "429")
    assert sends[i429 + 1]["at"] - sends[i429]["at"] >= 0.95, "retry_after honoured"
    assert api.limited == 0, "never beyond Telegram's 30 messages a second"
    print(f"100 updates answered in {took:.1f}s")


def test_bot_refuses_bad_settings_and_a_wrong_token(api: BotApi, tmp_path: Path, redis_server: EmbeddedRedis,
                                                    ns: str) -> None:
    base = fast_env(redis_server.url, ns, tmp_path / "data")

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "backend.src.bot"], env={**base, **env}, capture_output=True,
                              text=True, timeout=60, check=False)

    out = run()
    assert (out.returncode, out.stderr) == (2, "levibot-bot: error: LEVIBOT_TELEGRAM_BOT_TOKEN is not set\n")
    out = run(LEVIBOT_TELEGRAM_BOT_TOKEN=TOKEN, LEVIBOT_TELEGRAM_CHAT_ID="@desk")
    assert out.returncode == 2 and out.stderr.startswith("levibot-bot: error: LEVIBOT_TELEGRAM_CHAT_ID: ")
    assert len(out.stderr.splitlines()) == 1 and TOKEN not in out.stderr
    out = run(LEVIBOT_TELEGRAM_BOT_TOKEN="1:WRONG-token", LEVIBOT_TELEGRAM_CHAT_ID="5",
              LEVIBOT_TELEGRAM_API_BASE=api.url)
    assert out.returncode == 3
    logs = "".join(p.read_text() for p in (tmp_path / "data" / "logs").glob("bot-*.jsonl"))
    assert "the Bot API refused the token" in logs and "WRONG" not in logs + out.stderr


def test_no_bot_flag(start_manager: Callable[..., ManagerProc], r: redis.Redis, ns: str, api: BotApi) -> None:
    m = start_manager(["BTCUSDT"], "--no-bot", **bot_env(api))
    wait_running(r, ns, ["BTCUSDT"])
    time.sleep(1.0)
    assert bot_proc(m) is None and not [c for c in api.calls if c["method"] == "getUpdates"]


def listening(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 405  # POST only
    except httpx.HTTPError:
        return False


def test_webhook_mode(api: BotApi, tmp_path: Path, redis_server: EmbeddedRedis, ns: str) -> None:
    port = free_port()
    env = fast_env(redis_server.url, ns, tmp_path / "data", **bot_env(
        api, telegram_webhook_url="https://bot.example.com/tg/hook", telegram_webhook_port=port))
    proc = subprocess.Popen([sys.executable, "-m", "backend.src.bot"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        hook = wait_for(lambda: [c for c in api.calls if c["method"] == "setWebhook"], 20, what="setWebhook")
        params = hook[0]["params"]  # type: ignore[index]
        assert params["url"] == "https://bot.example.com/tg/hook" and params["max_connections"] == 1
        secret = params["secret_token"]
        url = f"http://127.0.0.1:{port}/tg/hook"
        wait_for(lambda: listening(url), 10, what="the listener")
        update = api.message(DESK, TRADER, "/help")
        assert httpx.post(url, json=update).status_code == 403, "no secret: refused"
        assert httpx.post(url, json=update, headers={HEADER: "guess"}).status_code == 403
        assert httpx.post(url, content=b"{not json", headers={HEADER: secret}).status_code == 400
        ok = httpx.post(url, json=update, headers={HEADER: secret}, timeout=10)
        assert (ok.status_code, ok.text) == (200, "ok")
        assert replies(api, DESK)[-1]["text"].startswith("LeviBot commands")
        again = httpx.post(url, json=update, headers={HEADER: secret}, timeout=10)  # Telegram delivers it again
        assert (again.status_code, again.text) == (200, "already handled") and len(replies(api, DESK)) == 1
        other = api.message(OTHER, STRANGER, "/status")
        assert httpx.post(url, json=other, headers={HEADER: secret}, timeout=10).status_code == 200
        assert replies(api, OTHER) == []
        assert not [c for c in api.calls if c["method"] == "getUpdates"], "no polling in webhook mode"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0, proc.stderr.read() if proc.stderr else ""
