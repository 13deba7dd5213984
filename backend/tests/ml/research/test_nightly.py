"""The nightly's plan on a fresh clone: its symbols and its Redis default to what the manager left, or it
says in one line the one command that makes it possible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.ml.research import nightly
from backend.src.core.errors import UsageError
from backend.src.core.settings import Settings


def test_symbols_default_to_the_fleet_the_manager_ran(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)  # type: ignore[call-arg]
    with pytest.raises(UsageError, match=r"RETRAIN_SYMBOLS=BTCUSDT,ETHUSDT .*python -m backend.src.engine_manager"):
        nightly.symbols(s)
    s.registry_path.write_text(json.dumps({"ETHUSDT": {"status": "stopped"}, "BTCUSDT": {"status": "stopped"}}))
    assert nightly.symbols(s) == ["BTCUSDT", "ETHUSDT"]
    assert nightly.symbols(s.model_copy(update={"retrain_symbols": ["solusdt"]})) == ["SOLUSDT"]


def test_report_without_any_redis_says_how_to_get_one(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEVIBOT_REDIS_URL", raising=False)
    code = nightly.main(["--data-dir", str(tmp_path), "report", "failure", "--duration", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "start the manager" in err[0] and "6379" not in err[0], err
