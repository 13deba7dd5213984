from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
from pathlib import Path

from backend.src.core.logging_setup import DailyJsonlHandler, JsonFormatter, configure


def record(msg: str, created: float, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("t", logging.INFO, __file__, 1, msg, None, None)
    rec.created = created
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_daily_rotation_and_retention(tmp_path: Path) -> None:
    old = tmp_path / "engine-BTCUSDT-2000-01-01.jsonl"
    old.write_text("{}\n")
    other = tmp_path / "engine-BTCUSDTX-2000-01-01.jsonl"  # a different symbol sharing the prefix
    other.write_text("{}\n")
    h = DailyJsonlHandler(tmp_path, "engine-BTCUSDT", retention_days=30)
    h.setFormatter(JsonFormatter({"symbol": "BTCUSDT"}))
    day1 = 1_700_000_000.0  # 2023-11-14 UTC
    h.emit(record("a", day1, side="buy"))
    h.emit(record("b", day1 + 86_400))
    h.close()
    f1 = tmp_path / "engine-BTCUSDT-2023-11-14.jsonl"
    f2 = tmp_path / "engine-BTCUSDT-2023-11-15.jsonl"
    line = json.loads(f1.read_text())
    assert line["msg"] == "a" and line["symbol"] == "BTCUSDT" and line["pid"] == os.getpid() and line["side"] == "buy"
    assert json.loads(f2.read_text())["msg"] == "b"
    assert not old.exists() and other.exists()


def _spam(directory: str, n: int) -> None:
    configure(Path(directory), "engine-X", static={"symbol": "X"})
    log = logging.getLogger("spam")
    for i in range(n):
        log.info("line %d %s", i, "x" * 300)


def test_many_processes_one_file_no_interleaving(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_spam, args=(str(tmp_path), 500)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    (path,) = tmp_path.glob("engine-X-*.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == 2000
    parsed = [json.loads(x) for x in lines]
    assert len({p["pid"] for p in parsed}) == 4


def test_exception_is_logged_as_one_line(tmp_path: Path) -> None:
    configure(tmp_path, "manager")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("t").exception("failed")
    (path,) = tmp_path.glob("manager-*.jsonl")
    (line,) = path.read_text().splitlines()
    assert "RuntimeError: boom" in json.loads(line)["exc"]
    for h in logging.getLogger().handlers:
        h.close()
    logging.getLogger().handlers.clear()


def test_secrets_are_blanked_out_of_messages_and_tracebacks(tmp_path: Path) -> None:
    handler = configure(tmp_path, "bot", secrets=["123:SECRET", ""])
    log = logging.getLogger("httpx")
    try:
        log.warning("HTTP Request: POST https://api.telegram.org/bot%s/getUpdates", "123:SECRET")
        logging.getLogger("httpx").info("below WARNING: not written at all (%s)", "123:SECRET")
        try:
            raise RuntimeError("url https://x/bot123:SECRET/sendMessage")
        except RuntimeError:
            logging.getLogger("t").exception("failed")
    finally:
        handler.close()
        logging.getLogger().removeHandler(handler)
    text = "".join(p.read_text() for p in tmp_path.glob("bot-*.jsonl"))
    lines = [json.loads(x) for x in text.splitlines()]
    assert "SECRET" not in text and len(lines) == 2
    assert lines[0]["msg"] == "HTTP Request: POST https://api.telegram.org/bot***/getUpdates"
    assert "bot***/sendMessage" in lines[1]["exc"]
