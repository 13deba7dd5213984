"""A Python plugin in a real manager: refused at start with one line (bad parameter, bad import, a planted
look-ahead), hot-reloaded when its file changes without restarting the engine, a broken edit refused with
``config_rejected`` while the running version trades on, and a plugin that raises on candles handled by
``on_failed`` while the engine keeps heartbeating."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis

from backend.tests.conftest import ManagerProc, fast_env, wait_for
from backend.tests.integration.helpers import events, state, wait_running

SYM = "BTCUSDT"
PLUGIN = '''
from pydantic import BaseModel, ConfigDict, Field
from backend.src.trading.api import Signal, Strategy

class P(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = Field(default=4, ge=1)

class Flip(Strategy):
    Params = P
    warmup_candles = 0

    def __init__(self, every: int = 4) -> None:
        self.every = every

    def on_candle(self, candle):
        if RAISES:
            raise KeyError("bug")
        return Signal(1.0 if (candle.ts // 60_000 // self.every) % 2 == 0 else 0.0, 0.5, 0.0, "flip")

RAISES = False
'''
PEEK = '''
from pydantic import BaseModel
from backend.src.trading.api import VectorStrategy

class P(BaseModel):
    every: int = 4

class Flip(VectorStrategy):
    Params = P
    warmup_candles = 10

    def populate(self, frame):
        frame["target"] = (frame["close"].shift(-1) > frame["close"]).astype(float)
        return frame
'''


def log_lines(data_dir: Path, text: str) -> list[dict[str, object]]:
    return [rec for p in (data_dir / "logs").glob(f"engine-{SYM}-*.jsonl") for line in p.read_text().splitlines()
            if text in str((rec := json.loads(line)).get("msg", ""))]


def manager(cfg: Path, env: dict[str, str]) -> ManagerProc:
    return ManagerProc(["--symbols", SYM, "--config", str(cfg)], env)


def test_a_plugin_is_refused_reloaded_and_contained(redis_server, ns: str, data_dir: Path, r: redis.Redis,
                                                    tmp_path: Path) -> None:
    plug = tmp_path / "plug_live.py"
    cfg = tmp_path / "fleet.yaml"
    env = {**fast_env(redis_server.url, ns, data_dir), "PYTHONPATH": str(tmp_path)}
    plug.write_text(PLUGIN)
    cfg.write_text("defaults:\n  strategy: {python: 'plug_live:Flip', params: {every: 0}}\n  size_usd: 1000\n")
    bad = manager(cfg, env)
    assert bad.proc.wait(60) == 2
    err = bad.output()[1].strip().splitlines()
    assert err == [f"levibot: error: {cfg}: defaults.strategy.params.every: Input should be greater than or equal "
                   "to 1 (parameters: every)"], err

    cfg.write_text("defaults:\n  strategy: {python: 'plug_live:Flip', params: {every: 3}}\n  size_usd: 1000\n"
                   "  on_failed: flatten\n")
    m = manager(cfg, env)
    try:
        pid = wait_running(r, ns, [SYM])[SYM]
        wait_for(lambda: int(state(r, ns, SYM).get("candles", 0)) > 20, 20, what="candles traded")
        assert log_lines(data_dir, "strategy checked: OK"), "checked before it traded"
        first = state(r, ns, SYM)["strategy_hash"]
        assert state(r, ns, SYM)["strategy"] == "plug_live:Flip"
        time.sleep(1.1)  # mtime granularity
        plug.write_text(PLUGIN.replace("every: int = Field(default=4", "every: int = Field(default=5"))
        wait_for(lambda: state(r, ns, SYM).get("strategy_hash") not in ("", first), 15, what="edited file reloaded")
        second = state(r, ns, SYM)["strategy_hash"]
        assert int(state(r, ns, SYM)["pid"]) == pid, "no restart"

        time.sleep(1.1)
        plug.write_text("def broken(:\n")
        wait_for(lambda: events(r, ns, "config_rejected"), 15, what="broken file refused")
        assert "strategy.python: plug_live:Flip: importing plug_live failed (SyntaxError" in \
            events(r, ns, "config_rejected")[0]["reason"]
        time.sleep(1.1)
        plug.write_text(PEEK)  # imports and validates; the engine's check finds the look-ahead and refuses it
        wait_for(lambda: len(events(r, ns, "config_rejected")) == 2, 30, what="look-ahead refused by the engine")
        reason = events(r, ns, "config_rejected")[1]["reason"]
        assert events(r, ns, "config_rejected")[1]["symbol"] == SYM and "look-ahead: candle" in reason, reason
        assert state(r, ns, SYM)["strategy_hash"] == second and int(state(r, ns, SYM)["pid"]) == pid, \
            "the running version trades on"

        time.sleep(1.1)
        plug.write_text(PLUGIN.replace("RAISES = False", "RAISES = True"))
        wait_for(lambda: int(state(r, ns, SYM).get("strategy_failures", 0)) > 20, 30, what="failing candles")
        st = state(r, ns, SYM)
        assert "KeyError" in st["strategy_error"] and float(st["position"]) == 0, st
        assert int(st["pid"]) == pid and st["status"] == "running", "the engine keeps its other duties"
        beat = float(st["heartbeat_at"])
        wait_for(lambda: float(state(r, ns, SYM)["heartbeat_at"]) > beat, 5, what="heartbeats go on")
        assert len(log_lines(data_dir, "raised on candle")) == 1, "logged once"
    finally:
        assert m.stop() == 0


def test_a_plugin_is_imported_once_in_the_forkserver_not_per_engine_start(redis_server, ns: str, data_dir: Path,
                                                                          r: redis.Redis, tmp_path: Path) -> None:
    import os  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from backend.tests.integration.helpers import running_pid  # noqa: PLC0415

    log = tmp_path / "imports.log"
    (tmp_path / "plug_once.py").write_text(f"import os\nopen({str(log)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
                                           + PLUGIN)
    cfg = tmp_path / "fleet.yaml"
    cfg.write_text("defaults:\n  strategy: {python: 'plug_once:Flip'}\n  size_usd: 1000\n")
    env = {**fast_env(redis_server.url, ns, data_dir), "PYTHONPATH": str(tmp_path)}
    m = ManagerProc(["--symbols", "BTCUSDT,ETHUSDT", "--config", str(cfg)], env)
    try:
        pids = wait_running(r, ns, ["BTCUSDT", "ETHUSDT"])
        os.kill(pids["BTCUSDT"], signal.SIGKILL)
        wait_for(lambda: running_pid(r, ns, "BTCUSDT") not in (None, pids["BTCUSDT"]), 20, what="restarted")
        engines = {*pids.values(), running_pid(r, ns, "BTCUSDT")}
        importers = [int(x) for x in log.read_text().split()]
        assert len(importers) == 2 and m.pid in importers, importers  # the manager (its check) and the forkserver
        assert not engines & set(importers), "no engine start or restart imported it"
        wait_for(lambda: log_lines(data_dir, "strategy checked before"), 10, what="the restart's check remembered")
    finally:
        assert m.stop() == 0
