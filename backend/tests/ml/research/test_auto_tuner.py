"""The tuner end to end on real candles, a study shared through Redis, the saved artifact,
the fusion test on it, and an engine trading on it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from backend.ml.research.auto_tuner import main
from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.settings import REPO_ROOT
from backend.src.market.candles import load_candles
from backend.src.models.registry import Registry
from backend.tests.conftest import OHLCV_DIR, ManagerProc, wait_for

pytestmark = [pytest.mark.slow]
# the last 12 days of the files, one small TFT size (trained once per run) on 600 windows
ARGS = ["--symbol", "ETHBTC,LTCBTC", "--holdout-days", "1", "--start-date", "2018-01-18", "--end-date", "2018-01-31",
        "--ohlcv-dir", str(OHLCV_DIR), "--tft-epochs", "1", "--tft-samples", "600", "--tft-sizes", "32"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis) -> tuple[Path, str]:
    data = tmp_path_factory.mktemp("tuned")
    study = ["--storage", redis_server.url, "--study-name", f"t-{uuid.uuid4().hex[:8]}", "--data-dir", str(data)]
    assert main([*ARGS, *study, "--trials", "3", "--no-save"]) == 0
    assert main([*ARGS, *study, "--trials", "2"]) == 0  # the same study, continued: 5 trials in all
    reg = Registry(data / "models")
    (version,) = reg.versions()
    return data, version


def test_artifact_and_metadata(tuned: tuple[Path, str]) -> None:
    data, version = tuned
    reg = Registry(data / "models")
    meta = reg.metadata(version)
    assert meta["n_trials"] == 5
    assert {"version", "train_date", "data_range", "backtest_sharpe", "backtest_win_rate", "accuracy", "hyperparams",
            "code_version", "sha256"} <= set(meta)
    hp = meta["hyperparams"]
    assert 3 <= hp["lgbm_max_depth"] <= 7 and 0.01 <= hp["lgbm_learning_rate"] <= 0.1
    assert hp["tft_hidden_size"] == 32 and 0.5 <= hp["threshold"] <= 0.7
    assert hp["horizon"] in (12, 24, 48) and 0 <= hp["edge"] <= 3 and 0 <= hp["min_hold"] <= 48
    assert meta["symbols"] == ["ETHBTC", "LTCBTC"] and meta["holdout_bars"] == 288
    rep = meta["test_report"]["LTCBTC"]
    candles, _ = load_candles(OHLCV_DIR / "LTC_BTC-5m.csv")
    in_range = [c.ts for c in candles if c.ts >= 1516233600000]  # from --start-date 2018-01-18
    assert rep["test_from_ms"] >= in_range[-1] - 0.25 * len(in_range) * 300_000  # the final quarter only
    assert set(rep["strategies"]) >= {"ensemble", "lgbm_only", "buy_and_hold", "sma_crossover"}
    reg.verify(version)


def test_fusion_test_on_the_production_model(tuned: tuple[Path, str]) -> None:
    data, version = tuned
    Registry(data / "models").promote(version)
    out = subprocess.run([sys.executable, "-m", "backend.ml.run_fusion_test", "--symbol", "ETHBTC", "--lookback",
                          "100", "--data-dir", str(data), "--ohlcv-dir", str(OHLCV_DIR)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"model {version}" in out.stdout and "prob_up 0." in out.stdout
    assert "latency per candle (features + ensemble), n=100: min" in out.stdout


def test_an_engine_trades_on_the_production_model(tuned: tuple[Path, str], redis_server: EmbeddedRedis,
                                                  ns: str, r: redis.Redis) -> None:
    data, version = tuned
    Registry(data / "models").promote(version)
    from backend.tests.conftest import fast_env

    env = fast_env(redis_server.url, ns, data, replay_speed=100000)
    cfg = data / "btc.yaml"
    cfg.write_text("defaults:\n  size_quote: 0.5\n  initial_equity: 10\n")  # ETH/BTC: money in BTC
    m = ManagerProc(["--symbols", "ETHBTC", "--config", str(cfg), "--source",
                     f"replay:{OHLCV_DIR / 'ETH_BTC-5m.csv'}"], env)
    try:
        def engine_log() -> str:
            return "".join(p.read_text() for p in (data / "logs").glob("engine-ETHBTC-*.jsonl"))

        wait_for(lambda: f"trading on ensemble {version}" in engine_log(), 90, what="engine on the ensemble")
        wait_for(lambda: r.hget(f"{ns}engine:ETHBTC", "status") == "running", 30, what="running")
    finally:
        assert m.stop() == 0


def test_bad_ranges_and_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--symbol", "ETHBTC,LTCBTC", "--ohlcv-dir", str(OHLCV_DIR), "--data-dir", str(tmp_path)]
    assert main([*base, "--start-date", "2023-01-01", "--end-date", "2024-10-01"]) == 2
    err = capsys.readouterr().err
    assert "only 0 candles in that range" in err and "covers 2018-01-10 04:55 .. 2018-01-30 04:50 UTC" in err
    assert main([*base, "--start-date", "2018/01/10", "--end-date", "2018-01-31"]) == 2
    assert "--start-date: expected YYYY-MM-DD" in capsys.readouterr().err
    assert main(["--symbol", "DOGEUSDT", "--ohlcv-dir", str(OHLCV_DIR), "--start-date", "2018-01-10",
                 "--end-date", "2018-01-31"]) == 2
    assert "--symbol: no candles for DOGEUSDT" in capsys.readouterr().err
    assert main(["--symbol", "DOGEUSDT", "--ohlcv-dir", str(OHLCV_DIR), "--start-date", "2018-01-10",
                 "--end-date", "2018-01-31", "--timeframe", "5m"]) == 2
    assert "no 5m candles for DOGEUSDT" in capsys.readouterr().err
    assert main([*base, "--start-date", "2018-01-10", "--end-date", "2018-01-31", "--tft-sizes", "32,x"]) == 2
    assert "--tft-sizes: expected hidden sizes 4..512" in capsys.readouterr().err
    assert main([*base, "--start-date", "2018-01-10", "--end-date", "2018-01-31", "--storage", "mysql://x"]) == 2
