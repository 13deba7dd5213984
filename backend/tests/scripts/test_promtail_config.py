"""The Promtail config for Loki (``backend/scripts/loki/promtail.yml``) against real log files: its file-name
pattern labels every process's files, and the JSON fields it reads are in every record."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import yaml

from backend.src.core import logging_setup
from backend.src.core.settings import REPO_ROOT

CONFIG = REPO_ROOT / "backend" / "scripts" / "loki" / "promtail.yml"


def stages() -> dict[str, dict[str, object]]:
    cfg = yaml.safe_load(CONFIG.read_text())
    (job,) = cfg["scrape_configs"]
    assert job["static_configs"][0]["labels"]["__path__"].endswith("/*.jsonl")
    return {k: v for stage in job["pipeline_stages"] for k, v in stage.items()}


def test_file_names_give_process_and_symbol_labels() -> None:
    s = stages()
    assert set(s["labels"]) == {"process", "symbol", "level"}  # type: ignore[arg-type]
    pattern = re.compile(str(s["regex"]["expression"]))  # type: ignore[index]
    cases = {"/d/logs/engine-BTCUSDT-2026-12-01.jsonl": ("engine", "BTCUSDT"),
             "logs/engine-R2ETHBTC-2026-12-01.jsonl": ("engine", "R2ETHBTC"),
             "/d/logs/manager-2026-12-01.jsonl": ("manager", None), "bot-2026-12-01.jsonl": ("bot", None),
             "/x/analytics-2026-12-01.jsonl": ("analytics", None)}
    for path, want in cases.items():
        m = pattern.search(path)
        assert m and (m["process"], m["symbol"]) == want, path
    assert pattern.search("/d/logs/.promtail-positions.yaml") is None


def test_json_fields_are_in_every_record(tmp_path: Path) -> None:
    handler = logging_setup.configure(tmp_path, "engine-BTCUSDT", static={"symbol": "BTCUSDT"})
    try:
        logging.getLogger("t").warning("fill", extra={"side": "buy"})
    finally:
        handler.close()
        logging.getLogger().removeHandler(handler)
    (path,) = tmp_path.glob("*.jsonl")
    record = json.loads(path.read_text().splitlines()[0])
    s = stages()
    for field in s["json"]["expressions"].values():  # type: ignore[index]
        assert field in record, field
    assert s["timestamp"]["source"] == "ts" and record["ts"].endswith("+00:00")  # type: ignore[index]
