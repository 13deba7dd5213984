"""Model registry: atomic versions with checksums, tamper rejection, atomic promotion,
rollback, retention."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backend.src.models.registry import KEEP, METADATA, ChecksumError, Registry, main


class Clock:
    def __init__(self) -> None:
        self.t = 1_795_000_000.0

    def __call__(self) -> float:
        self.t += 1
        return self.t


def writer(payload: str):  # type: ignore[no-untyped-def]
    def write(d: Path) -> list[Path]:
        (d / "lgbm.txt").write_text(payload)
        (d / "ensemble.json").write_text(json.dumps({"p": payload}))
        return [d / "lgbm.txt", d / "ensemble.json"]
    return write


def test_save_writes_metadata_with_checksums(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models", clock=Clock())
    v = reg.save(writer("a"), {"backtest_sharpe": 1.2, "data_range": ["2018-01-10", "2018-01-31"]})
    assert v.startswith("ensemble_") and len(v) == len("ensemble_YYYYMMDD_HHMMSS")
    meta = reg.metadata(v)
    assert set(meta["sha256"]) == {"lgbm.txt", "ensemble.json"} and meta["version"] == v
    assert {"train_date", "code_version", "backtest_sharpe", "data_range"} <= set(meta)
    assert reg.verify(v) == tmp_path / "models" / v
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".tmp")]


def test_a_failed_write_leaves_nothing_visible(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models", clock=Clock())

    def boom(d: Path) -> list[Path]:
        (d / "lgbm.txt").write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        reg.save(boom, {})
    assert reg.versions() == [] and list((tmp_path / "models").iterdir()) == []


@pytest.mark.parametrize("damage", ["edit", "delete", "no_sums"])
def test_tampered_artifacts_are_rejected(tmp_path: Path, damage: str) -> None:
    reg = Registry(tmp_path / "models", clock=Clock())
    v = reg.save(writer("a"), {})
    d = tmp_path / "models" / v
    if damage == "edit":
        (d / "lgbm.txt").write_text("evil")
    elif damage == "delete":
        (d / "ensemble.json").unlink()
    else:
        meta = json.loads((d / METADATA).read_text())
        meta["sha256"] = {}
        (d / METADATA).write_text(json.dumps(meta))
    with pytest.raises(ChecksumError):
        reg.verify(v)
    with pytest.raises(ChecksumError):
        reg.promote(v)
    assert reg.current() is None


def test_promote_rollback_and_retention(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models", clock=Clock())
    versions = [reg.save(writer(str(i)), {}) for i in range(3)]
    reg.promote(versions[0])
    reg.promote(versions[1])
    assert reg.current() == versions[1] and os.readlink(tmp_path / "models" / "current") == versions[1]
    assert reg.rollback() == versions[0] and reg.current() == versions[0]
    for i in range(KEEP + 3):
        reg.save(writer(f"n{i}"), {})
    reg.prune()
    kept = reg.versions()
    assert versions[0] in kept, "the production version is never pruned"
    assert len(kept) <= KEEP + 2


def test_rollback_without_history(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "models", clock=Clock())
    with pytest.raises(Exception, match="no previous production version"):
        reg.rollback()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = Registry(tmp_path / "models", clock=Clock())
    a, b = reg.save(writer("a"), {"backtest_sharpe": 0.5, "accuracy": 0.52}), reg.save(writer("b"), {})
    args = ["--data-dir", str(tmp_path)]
    assert main([*args, "promote", a]) == 0 and main([*args, "promote", b]) == 0
    assert main([*args, "list"]) == 0
    out = capsys.readouterr().out
    assert f"* {b}" in out and f"  {a}  sharpe 0.50" in out
    assert main([*args, "rollback"]) == 0 and reg.current() == a
    assert main([*args, "promote", "ensemble_19990101_000000"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main([*args, "verify", a]) == 0
