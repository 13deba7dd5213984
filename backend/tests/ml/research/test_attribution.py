"""The parity attribution on sessions with one planted difference each: it names the cause (and why, for a
decision) and gives its share of the gap; the causes always sum to the gap."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from backend.ml.research.parity import replay
from backend.risk.policy import load_policy
from backend.src.core.config import SymbolConfig
from backend.src.core.settings import REPO_ROOT, Settings
from backend.src.core.types import Candle
from backend.src.market import candle_log
from backend.src.trading.factory import build_strategy
from backend.src.trading.simulator import simulate

POLICY = REPO_ROOT / "backend" / "tests" / "fixtures" / "policy_permissive.yaml"
SYM, STEP = "BTCUSDT", 300_000
CFG = SymbolConfig.model_validate({"strategy": {"name": "sma_crossover", "fast": 3, "slow": 12, "allow_short": True},
                                   "size_usd": 1000, "market": "perpetual", "funding_rate": 0.0003})


def walk(n: int, seed: int = 11) -> list[Candle]:
    rng, price, out = random.Random(seed), 100.0, []
    for k in range(n):
        o, price = price, price * (1 + rng.gauss(0, 0.004))
        out.append(Candle(1_790_006_400_000 + k * STEP, o, max(o, price) * 1.001, min(o, price) * 0.999, price, 50.0))
    return out


CANDLES = walk(700)
WARM, TRADED = CANDLES[:40], CANDLES[40:]


def reference(traded: list[Candle] = TRADED) -> list[dict[str, Any]]:
    sim = simulate(SYM, CFG, build_strategy(CFG.strategy), traded, load_policy(POLICY), warmup=WARM)
    assert len(sim.fills) >= 20 and sim.journal.of_type("funding")
    return sim.journal.entries


def write(d: Path, entries: list[dict[str, Any]], sessions: list[tuple[str, list[Candle], list[Candle]]]) -> Settings:
    journal = d / "journal" / f"{SYM}.jsonl"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text("".join(json.dumps(e) + "\n" for e in entries))
    text = candle_log.HEADER
    for why, warm, traded in sessions:
        seq = max([int(e["seq"]) for e in entries if e.get("candle_ts", 0) < (traded[0].ts if traded else 0)] or [0])
        text += candle_log.marker(0 if why == "first" else seq, "start" if why == "first" else why)
        text += "".join(candle_log.row(c, warm=True) for c in warm) + "".join(candle_log.row(c, warm=False)
                                                                             for c in traded)
    record = candle_log.path_of(d, SYM)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(text)
    return Settings(data_dir=d, risk_policy=POLICY)  # type: ignore[arg-type]


def attribution(d: Path, entries: list[dict[str, Any]],
                sessions: list[tuple[str, list[Candle], list[Candle]]] | None = None,
                market: list[Candle] | None = None) -> dict[str, Any]:
    settings = write(d, entries, sessions or [("first", WARM, TRADED)])
    out = replay(SYM, settings, CFG.model_dump_json(), "", market)["attribution"]
    assert abs(sum(c["amount"] for c in out["causes"]) - out["gap"]) < 1e-6 * max(1.0, abs(out["gap"])), out["causes"]
    return out


def fills(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["type"] == "fill"]


def top(out: dict[str, Any]) -> dict[str, Any]:
    return out["causes"][0]


def test_no_difference_no_gap(tmp_path: Path) -> None:
    out = attribution(tmp_path, reference())
    assert out["causes"] == [] and abs(out["gap"]) < 1e-9 and out["unexplained"] == 0


@pytest.mark.parametrize("cause", ["fees", "price", "timing", "size", "funding"])
def test_a_planted_execution_difference_is_named_with_its_share(tmp_path: Path, cause: str) -> None:
    entries = reference()
    f = fills(entries)[7]
    if cause == "fees":
        for e in fills(entries):
            e["fee"] *= 1.5
    elif cause == "price":
        f["price"] *= 1.002 if f["side"] == "buy" else 0.998
    elif cause == "timing":
        f["candle_ts"] += STEP
        f["price"] = next(c.open for c in CANDLES if c.ts == f["candle_ts"])
    elif cause == "size":
        f["qty"] *= 0.97
    else:
        for e in entries:
            if e["type"] == "funding":
                e["amount"] *= 2
    out = attribution(tmp_path, entries)
    assert abs(out["gap"]) > 1e-6, "a planted difference moves the PnL"
    assert top(out)["cause"] == cause and len(out["causes"]) == 1, out["causes"]
    assert top(out)["share"] == pytest.approx(1.0) and not top(out)["unexplained"]
    assert out["unexplained"] == 0


def without(entries: list[dict[str, Any]], f: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in entries if e is not f]


def decision_whys(out: dict[str, Any]) -> list[str]:
    return [r["why"] for r in out["rows"] if r["cause"] == "decision"]


def test_a_decision_difference_after_a_restart_is_its_warm_up(tmp_path: Path) -> None:
    entries = reference()
    f = fills(entries)[9]
    k = next(i for i, c in enumerate(TRADED) if c.ts == f["candle_ts"]) - 2  # the engine restarted two candles before
    out = attribution(tmp_path, without(entries, f), [("first", WARM, TRADED[:k]),
                                                      ("start", TRADED[k - 12:k], TRADED[k:])])
    assert top(out)["cause"] == "decision" and top(out)["share"] == pytest.approx(1.0)
    assert decision_whys(out) == [f"backtest only ({f['side']}): the strategy's warm-up after a restart"]
    assert out["unexplained"] == 0 and out["restarts"] == 1


def test_a_decision_difference_under_an_older_config_is_the_config_change(tmp_path: Path) -> None:
    entries = reference()
    f = fills(entries)[9]
    k = next(i for i, c in enumerate(TRADED) if c.ts == f["candle_ts"]) + 5  # the config changed after it
    out = attribution(tmp_path, without(entries, f), [("first", WARM, TRADED[:k]), ("config", TRADED[k - 12:k],
                                                                                    TRADED[k:])])
    assert decision_whys(out) == [f"backtest only ({f['side']}): a config change mid-session (decided under the "
                                  "older config)"]
    assert out["config_changes"] == 1 and out["unexplained"] == 0


def test_an_engine_decision_by_another_model_is_the_model_change(tmp_path: Path) -> None:
    entries = reference()
    f = dict(fills(entries)[9], order_id="extra-1", seq=len(entries) + 1)
    order = {"seq": len(entries) + 2, "gen": 1, "type": "order", "id": "extra-1", "strategy": "0ld5trategy",
             "model": "ensemble_20240101_000000"}
    out = attribution(tmp_path, [*entries, order, f])
    (why,) = decision_whys(out)
    assert why.startswith(f"engine only ({f['side']}): a config or model change (decided by strategy 0ld5trategy")


def test_a_missing_candle_explains_the_decision_after_it(tmp_path: Path) -> None:
    f = fills(reference())[9]
    k = next(i for i, c in enumerate(TRADED) if c.ts == f["candle_ts"])
    gapped = TRADED[:k - 1] + TRADED[k:]  # the candle before that fill never reached the engine
    engine = reference(gapped)  # what the engine did on what it saw
    out = attribution(tmp_path, engine, [("first", WARM, gapped)], market=CANDLES)
    assert out["missing"] == 1
    whys = [r["why"] for r in out["rows"] if r["cause"] in ("decision", "timing")]
    assert whys and all("a missing or late candle" in w for w in whys), out["rows"]
    assert out["unexplained"] == 0 and any("a missing or late candle" in w for w in whys)
    alone = attribution(tmp_path, engine, [("first", WARM, gapped)])
    assert alone["causes"] == [], "the engine's own record alone: the backtest decides alike"


def test_a_decision_nothing_explains_is_unexplained_drift(tmp_path: Path) -> None:
    entries = reference()
    f = fills(entries)[9]
    out = attribution(tmp_path, without(entries, f))
    assert top(out)["cause"] == "decision" and top(out)["unexplained"] and top(out)["share"] == pytest.approx(1.0)
    assert out["unexplained"] == pytest.approx(out["gap"]) and out["explained"] == pytest.approx(0, abs=1e-9)


def test_a_size_difference_within_the_exchange_step_is_rounding(tmp_path: Path) -> None:
    stepped = CFG.model_copy(update={"step_size": 0.01})
    sim = simulate(SYM, stepped, build_strategy(stepped.strategy), TRADED, load_policy(POLICY), warmup=WARM)
    entries = sim.journal.entries
    fills(entries)[5]["qty"] -= 0.005  # the engine's exchange rounded the other way
    settings = write(tmp_path, entries, [("first", WARM, TRADED)])
    out = replay(SYM, settings, stepped.model_dump_json(), "")["attribution"]
    (row,) = out["rows"]
    assert (row["cause"], row["why"]) == ("size", "rounding to the exchange's step")


def test_a_fill_the_engine_refused_is_size_with_the_reason(tmp_path: Path) -> None:
    entries = reference()
    f = fills(entries)[9]
    reject = {"seq": f["seq"], "gen": 1, "type": "reject", "id": "r1", "candle_ts": f["candle_ts"],
              "reason": "min_notional: 4.2 USDT below the exchange's 5"}
    out = attribution(tmp_path, [reject if e is f else e for e in entries])
    assert top(out)["cause"] == "size" and top(out)["share"] == pytest.approx(1.0)
    assert out["rows"][0]["why"] == "the engine refused it: min_notional: 4.2 USDT below the exchange's 5"
