"""Config hot reload against a real manager: only a complete, valid, settled file is applied."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import redis

from backend.src.core.config import parse_source, read_settled
from backend.src.core.errors import UsageError
from backend.src.core.settings import REPO_ROOT
from backend.tests.conftest import ManagerProc, fast_env, wait_for
from backend.tests.integration.helpers import events, state, wait_running

EXAMPLE = (REPO_ROOT / "backend" / "engines.example.yaml").read_text()
SYMS = ["BTCUSDT", "ETHUSDT"]


def rejected_log_lines(data_dir: Path) -> list[dict[str, object]]:
    out = []
    for path in (data_dir / "logs").glob("manager*.jsonl"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if "config rejected" in str(rec.get("msg", rec.get("message", ""))):
                out.append(rec)
    return out


def test_an_emptied_config_file_is_refused_and_the_running_config_stays(
    redis_server, ns: str, data_dir: Path, r: redis.Redis, tmp_path: Path
) -> None:
    cfg = tmp_path / "x.yaml"
    cfg.write_text(EXAMPLE.replace("name: ensemble", "name: sma_crossover"))
    m = ManagerProc(["--symbols", ",".join(SYMS), "--config", str(cfg)], fast_env(redis_server.url, ns, data_dir))
    try:
        wait_running(r, ns, SYMS)
        wait_for(lambda: all(state(r, ns, s).get("config_version") for s in SYMS), 5, what="config applied")
        before = {s: state(r, ns, s)["config_version"] for s in SYMS}
        published = r.hget(f"{ns}config:BTCUSDT", "json")
        time.sleep(1.1)  # mtime granularity
        cfg.write_text("")  # `: > x.yaml`, as an editor truncating before it writes
        deadline = time.monotonic() + 10
        while not events(r, ns, "config_rejected") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.5)  # several more checks of the unchanged empty file
        rejected = events(r, ns, "config_rejected")
        assert len(rejected) == 1 and "is empty" in rejected[0]["reason"], rejected
        assert {s: state(r, ns, s)["config_version"] for s in SYMS} == before, "nothing applied"
        assert r.hget(f"{ns}config:BTCUSDT", "json") == published
        assert json.loads(str(published))["size_usd"] == 2000
        assert len(rejected_log_lines(data_dir)) == 1, "one log line per rejected file"
        cfg.write_text("defaults: [\n  size_usd: 5\n")  # broken YAML
        wait_for(lambda: len(events(r, ns, "config_rejected")) == 2, 10, what="broken YAML rejected")
        time.sleep(2.5)
        assert "not valid YAML" in events(r, ns, "config_rejected")[1]["reason"]
        assert len(rejected_log_lines(data_dir)) == 2, "one log line per rejected file"
        assert {s: state(r, ns, s)["config_version"] for s in SYMS} == before
    finally:
        assert m.stop() == 0


def test_a_file_being_written_is_read_once_it_settles(tmp_path: Path) -> None:
    cfg = tmp_path / "x.yaml"
    cfg.write_text("defaults:\n")

    def slow_writer() -> None:
        text = EXAMPLE
        with cfg.open("w") as f:
            for i in range(0, len(text), 200):
                f.write(text[i:i + 200])
                f.flush()
                time.sleep(0.02)

    t = threading.Thread(target=slow_writer)
    t.start()
    time.sleep(0.01)
    got = read_settled(cfg)
    t.join()
    assert got == EXAMPLE


LEVI = """levilang: 1
name: hot
timeframe: 1m
indicators:
  fast: ema(close, 3)
entry: fast crosses_above sma(close, 8)
exit: fast crosses_below sma(close, 8)
"""


def test_a_levilang_file_is_checked_at_start_and_hot_reloaded(redis_server, ns: str, data_dir: Path, r: redis.Redis,
                                                             tmp_path: Path) -> None:
    from backend.src.trading.levilang import compile_text  # noqa: PLC0415

    levi = tmp_path / "hot.levi.yaml"
    levi.write_text("name: hot\nentry: rsi(close, 14, 3) > 50\n")
    cfg = tmp_path / "fleet.yaml"
    cfg.write_text("defaults:\n  strategy: {levilang: hot.levi.yaml}\n  annual_volatility: 3.0\n")
    env = fast_env(redis_server.url, ns, data_dir)
    bad = ManagerProc(["--symbols", ",".join(SYMS), "--config", str(cfg)], env)
    assert bad.proc.wait(60) == 2
    err = bad.output()[1].strip().splitlines()
    assert err == [f"levibot: error: {cfg}: defaults.strategy.levilang: {levi.resolve()}: line 2: "
                   "`rsi` takes 1 or 2 arguments, got 3"], err
    assert not r.keys(f"{ns}*engine:*"), "nothing started"

    levi.write_text(LEVI)
    m = ManagerProc(["--symbols", ",".join(SYMS), "--config", str(cfg)], env)
    try:
        pids = wait_running(r, ns, SYMS)
        first = compile_text(LEVI).source_hash
        wait_for(lambda: all(state(r, ns, s).get("strategy_hash") == first for s in SYMS), 10, what="compiled file")
        time.sleep(1.1)  # mtime granularity
        levi.write_text(LEVI.replace("ema(close, 3)", "ema(close, 4)"))
        second = compile_text(levi.read_text()).source_hash
        wait_for(lambda: all(state(r, ns, s).get("strategy_hash") == second for s in SYMS), 15,
                 what="changed file hot-reloaded")
        assert {s: int(state(r, ns, s)["pid"]) for s in SYMS} == pids, "no restart"
        time.sleep(1.1)
        levi.write_text(LEVI.replace("entry: fast crosses_above sma(close, 8)", "entry: close > 'abc'"))
        wait_for(lambda: events(r, ns, "config_rejected"), 15, what="invalid file refused")
        reason = events(r, ns, "config_rejected")[0]["reason"]
        assert "hot.levi.yaml: line 6: `'abc'` is not a number" in reason, reason
        time.sleep(1.1)
        levi.write_text(LEVI.replace("ema(close, 3)", "-" * 100_000 + "close"))  # hostile: the manager survives
        wait_for(lambda: len(events(r, ns, "config_rejected")) == 2, 15, what="hostile file refused")
        assert "MAX_EXPR_CHARS" in events(r, ns, "config_rejected")[1]["reason"]
        time.sleep(1.5)
        assert m.proc.poll() is None, "the manager is still up"
        assert all(state(r, ns, s).get("strategy_hash") == second for s in SYMS), "the running version stays"
        assert {s: int(state(r, ns, s)["pid"]) for s in SYMS} == pids
    finally:
        assert m.stop() == 0


class Exploding:
    """A candidate config whose loading fails in a way no check foresaw."""

    def fingerprint(self) -> None:
        return None

    def load(self) -> None:
        raise RecursionError("maximum recursion depth exceeded")


def test_any_failure_loading_a_candidate_config_is_a_rejection(r: redis.Redis, ns: str) -> None:
    from backend.src.core.errors import UsageError  # noqa: PLC0415
    from backend.src.core.keys import Keys  # noqa: PLC0415
    from backend.src.supervisor.control import ControlPlane  # noqa: PLC0415

    plane = ControlPlane(object(), r, Keys(ns), "owner", Exploding())  # type: ignore[arg-type]
    try:
        plane.reload()
    except UsageError as exc:
        assert "RecursionError while loading it" in str(exc)
    else:
        raise AssertionError("not rejected")
    (ev,) = events(r, ns, "config_rejected")
    assert "RecursionError" in ev["reason"]


def test_a_replayed_perpetual_whose_funding_stops_short_is_refused_at_load(tmp_path: Path) -> None:
    from backend.src.supervisor.control import ConfigSource  # noqa: PLC0415

    t0 = 1_699_977_600_000  # a funding time
    (tmp_path / "BTC_USDT-1h.csv").write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"{t0 + i * 3_600_000},100,101,99,100,5\n" for i in range(30)))
    (tmp_path / "BTC_USDT-funding.csv").write_text(f"timestamp,rate\n{t0},0.0001\n{t0 + 28_800_000},0.0001\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("defaults: {market: perpetual}\n")
    source = ConfigSource(cfg, ["BTCUSDT"], parse_source(f"replay:{tmp_path}"))
    with pytest.raises(UsageError, match=r"c.yaml: symbols.BTCUSDT.funding_file BTC_USDT-funding.csv: covers "
                                         r"2023-11-14 16:00 .. 2023-11-15 00:00, the candles 2023-11-14 16:00 .. "):
        source.load()
    (tmp_path / "BTC_USDT-funding.csv").write_text("timestamp,rate\n" + "".join(
        f"{t0 + i * 28_800_000},0.0001\n" for i in range(5)))
    configs, _ = source.load()  # covered: found beside the candles, taken
    assert configs["BTCUSDT"].funding_file == str((tmp_path / "BTC_USDT-funding.csv").resolve())


def test_the_manager_has_each_engine_checked_for_parity_on_its_workers(start_manager, r: redis.Redis,
                                                                        ns: str) -> None:
    start_manager(SYMS, workers=1, parity_every_s=2)
    wait_running(r, ns, SYMS)

    def checked() -> list[dict[str, str]]:
        runs = [r.hgetall(f"{ns}run:{i}") for i in r.zrange(f"{ns}runs", 0, -1)]
        return [x for x in runs if x.get("kind") == "parity" and x.get("status") == "done"]

    wait_for(lambda: {json.loads(x["spec"])["symbol"] for x in checked()} >= set(SYMS), 90,
             what="a scheduled parity run per engine, done on the worker")
    result = json.loads(checked()[0]["result"])
    assert json.loads(checked()[0]["spec"])["scheduled"] and "attribution" in result
