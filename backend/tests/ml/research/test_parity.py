"""The parity job on files whose answer is known: an engine's session that the backtester trades the same."""

from __future__ import annotations

import json
import random
from pathlib import Path

from backend.ml.research.parity import replay
from backend.risk.policy import load_policy
from backend.src.core.config import SymbolConfig
from backend.src.core.settings import REPO_ROOT, Settings
from backend.src.core.types import Candle
from backend.src.market import candle_log
from backend.src.trading.factory import build_strategy
from backend.src.trading.simulator import simulate

POLICY = REPO_ROOT / "backend" / "tests" / "fixtures" / "policy_permissive.yaml"


def walk(n: int, seed: int = 7) -> list[Candle]:
    rng, price, out = random.Random(seed), 100.0, []
    for k in range(n):
        o, price = price, price * (1 + rng.gauss(0, 0.004))
        out.append(Candle(1_790_000_000_000 + k * 60_000, o, max(o, price) * 1.001, min(o, price) * 0.999, price, 5.0))
    return out


def test_fills_on_candles_not_recorded_yet_wait_for_the_next_comparison(tmp_path: Path) -> None:
    """The journal is written at once, the candle record once a heartbeat: a comparison made in between
    sees the engine's fill on a candle the record does not have yet. It is left out, not a difference."""
    settings = Settings(data_dir=tmp_path, risk_policy=POLICY)  # type: ignore[arg-type]
    cfg = SymbolConfig.model_validate({"strategy": {"name": "sma_crossover", "fast": 2, "slow": 5}, "size_usd": 1000})
    candles = walk(400)
    warm, traded = candles[:50], candles[50:]
    sim = simulate("BTCUSDT", cfg, build_strategy(cfg.strategy), traded, load_policy(POLICY), warmup=warm)
    assert len(sim.fills) >= 6
    journal = tmp_path / "journal" / "BTCUSDT.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_text("".join(json.dumps({"seq": i + 1, "gen": 1, **f.as_entry()}) + "\n"
                               for i, f in enumerate(sim.fills)))
    last_fill = sim.fills[-1].candle_ts
    record = candle_log.path_of(tmp_path, "BTCUSDT")
    record.parent.mkdir(parents=True)
    record.write_text(candle_log.HEADER + candle_log.marker(0) + "".join(candle_log.row(c, warm=True) for c in warm)
                      + "".join(candle_log.row(c, warm=False) for c in traded if c.ts < last_fill))
    out = replay("BTCUSDT", settings, cfg.model_dump_json(), "")
    assert out["differences"] == 0, out["rows"][:3]
    assert out["fills_engine"] == out["fills_backtest"] == len([f for f in sim.fills if f.candle_ts < last_fill])
