"""The runtime image's promise, in the full install: with every module the runtime image lacks made
unimportable (torch, lightning, pytorch-forecasting, optuna, LightGBM, SciPy, scikit-learn, onnx, chDB,
pyarrow, fontTools and their dependencies) in every process of the manager's tree, an engine loads and
trades a promoted model (LightGBM + the TFT, both through ONNX Runtime), the API answers, an RQ worker
runs a job, and the manager says the analytics store is off instead of crashing a child."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from backend.src.core.redis_launcher import EmbeddedRedis, free_port
from backend.src.models.ensemble_predictor import EnsembleConfig, EnsemblePredictor, ModelSpec
from backend.src.models.feature_pipeline import build, label_up, load_ohlcv
from backend.src.models.registry import METADATA, Registry
from backend.tests.conftest import OHLCV_DIR, ManagerProc, fast_env, http_up, wait_for
from backend.tests.integration.helpers import state, wait_running
from backend.tests.runtime_set import training_only_modules

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ETH = OHLCV_DIR / "ETH_BTC-5m.csv"
# Imports of these modules fail as if they were not installed (and say so in the logs); looking for them
# (importlib.util.find_spec) finds nothing, as in the runtime image.
BLOCKER = '''
import importlib.abc, importlib.util, sys
BLOCKED = set(%r)
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is blocked: the runtime must not need it", name=name)
        return None
_find_spec = importlib.util.find_spec
def find_spec(name, package=None):
    return None if name.partition(".")[0] in BLOCKED else _find_spec(name, package)
importlib.util.find_spec = find_spec
sys.meta_path.insert(0, Blocker())
'''


@pytest.fixture
def started() -> Iterator[list[ManagerProc]]:
    procs: list[ManagerProc] = []
    yield procs
    for m in procs:
        m.stop()


def test_engine_trades_a_promoted_tft_model_without_torch(started: list[ManagerProc], redis_server: EmbeddedRedis,
                                                         engine_config: Path, data_dir: Path, tmp_path: Path,
                                                         r: redis.Redis, ns: str) -> None:
    df = load_ohlcv(ETH)
    cfg = EnsembleConfig(models=[
        ModelSpec(name="lgbm", weight=0.5, params={"n_estimators": 30}),
        ModelSpec(name="tft", weight=0.5, features=["ret_1", "vol_12", "vol_48"],
                  params={"hidden_size": 8, "epochs": 1, "max_train_samples": 500})])
    model = EnsemblePredictor(cfg).fit(build(df).iloc[:2500], label_up(df, 12).iloc[:2500])
    model.calibration = (1.0, 0.0)  # the runtime under test, not this small model's calibration (it is flat)
    reg = Registry(data_dir / "models")
    version = reg.save(model.save, {"symbols": ["ETHBTC"]})
    reg.promote(version)
    files = {p.name for p in (data_dir / "models" / version).rglob("*")}
    assert {"tft.onnx", "tft_runtime.json"} <= files
    sums = json.loads((data_dir / "models" / version / METADATA).read_text())["sha256"]
    assert any(k.endswith("tft.onnx") for k in sums), "the registry's checksums cover the ONNX file"

    site = tmp_path / "site"
    site.mkdir()
    blocked = training_only_modules()
    assert {"torch", "lightning", "optuna", "lightgbm", "scipy", "sklearn", "chdb", "pyarrow", "fontTools"} <= blocked
    (site / "sitecustomize.py").write_text(BLOCKER % sorted(blocked))
    engine_config.write_text("defaults:\n  strategy: {name: ensemble, fast: 10, slow: 30}\n  size_usd: 1000\n"
                             "  quote_usd: 50000\n")
    port = free_port()
    env = fast_env(redis_server.url, ns, data_dir, replay_speed=3000, api_enabled="true", api_port=port,
                   analytics_enabled="true", workers=1, api_token="runtime-test-token")
    env["PYTHONPATH"] = str(site)  # every process of the tree imports the blocker at start
    started.append(ManagerProc(["--symbols", "ETHBTC", "--config", str(engine_config), f"--source=replay:{ETH}"],
                               env))
    wait_running(r, ns, ["ETHBTC"])
    wait_for(lambda: state(r, ns, "ETHBTC").get("model_version") == version, 30, what="the model loaded")
    # every traded candle carries the model's opinion (prob_up, confidence, version): the TFT and
    # LightGBM ran in the engine, candle after candle
    def opinions_of_the_model() -> list[dict[str, str]] | None:
        got = [f for _, f in r.xrevrange(f"{ns}hist:ETHBTC", count=500) if f.get("mv") == version and "p" in f]
        return got[:50] if len(got) >= 50 else None

    opinions = wait_for(opinions_of_the_model, 90, what="50 candles traded on the model's opinion")
    probs = [float(f["p"]) for f in opinions]  # type: ignore[union-attr]
    assert len(probs) == 50 and all(0 < p < 1 for p in probs) and len(set(probs)) > 10
    # the API and an RQ worker: a dashboard backtest of the production model (its report drawn with matplotlib)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_up(url), 20, what="api up")
    engines = httpx.get(url + "/engines/status").json()["engines"]
    assert [e["symbol"] for e in engines] == ["ETHBTC"] and engines[0]["status"] == "running"
    spec = {"symbols": ["BTCUSDT"], "start": "2026-01-01", "end": "2026-01-03", "strategy": "ensemble"}
    run_id = httpx.post(url + "/backtests", json=spec, headers={"Authorization": "Bearer runtime-test-token"}
                        ).json()["id"]
    run = wait_for(lambda: (x := httpx.get(f"{url}/runs/{run_id}").json())["status"] in ("done", "error") and x, 90,
                   what="the backtest run")
    assert run["status"] == "done", run  # type: ignore[index]
    logs = "".join(p.read_text() for p in (data_dir / "logs").glob("*.jsonl"))
    assert "is blocked" not in logs, "nothing in the manager's tree tried to import what the runtime lacks"
    assert "analytics off: the embedded store needs chdb-core-lite" in logs
