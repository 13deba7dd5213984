"""The files users and images rely on stay consistent with the code."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

from backend.src.config import load_engine_config
from backend.src.settings import REPO_ROOT


def test_example_engine_config_is_valid() -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    cfg = load_engine_config(REPO_ROOT / "backend" / "engines.example.yaml", symbols)
    assert cfg["ETHUSDT"].strategy.name == "momentum" and cfg["XRPUSDT"].size_usd == 1000


def test_dockerfile_copies_existing_paths_and_runs_an_importable_module() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (?!--from)(.*)$", text, flags=re.M):
        parts = [p for p in shlex.split(line) if not p.startswith("--")]
        for src in parts[:-1]:
            assert (REPO_ROOT / src).exists(), f"Dockerfile copies missing {src}"
    module = re.search(r'ENTRYPOINT \["python", "-m", "([\w.]+)"\]', text)
    assert module is not None
    importlib.import_module(module.group(1))


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    commands = [x for x in block.splitlines() if x and not x.startswith("#")]
    assert len(commands) == 2
    assert "backend.src.engine_manager" in commands[0]
    assert "pytest" in commands[1]
    assert commands[1] in (REPO_ROOT / ".ci" / "run").read_text()


def test_data_dir_is_ignored_but_kept() -> None:
    ignore = (REPO_ROOT / ".gitignore").read_text()
    assert "backend/data/*" in ignore and (Path(REPO_ROOT) / "backend" / "data" / ".gitkeep").exists()
