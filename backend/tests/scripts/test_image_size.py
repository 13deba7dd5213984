"""The image-size script measures what the Dockerfile installs: each target's deps-stage pip arguments, the
same pruning, the code stage's files (the full measurement installs packages: run by hand, see docs)."""

from __future__ import annotations

from pathlib import Path

from backend.scripts.image_size import code_bytes, pip_args
from backend.scripts.prune_install import main as prune_main
from backend.scripts.prune_install import prune
from backend.src.core.settings import REPO_ROOT


def test_pip_arguments_come_from_the_dockerfile(tmp_path: Path) -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    runtime = pip_args(dockerfile, "runtime", tmp_path)
    assert "--no-deps" in runtime and runtime[runtime.index("-r") + 1] == "requirements-runtime.txt"
    assert f"--prefix={tmp_path}" in runtime and "--no-compile" in runtime
    trainer = pip_args(dockerfile, "trainer", tmp_path)
    assert trainer[trainer.index("-r") + 1] == "requirements.txt" and "--no-deps" not in trainer
    assert not any("index-url" in a or "pytorch.org" in a for a in trainer)  # the configured index, same pins
    src = sum(p.stat().st_size for p in (REPO_ROOT / "backend" / "src").rglob("*.py"))
    assert src < code_bytes(dockerfile) < 20e6  # the code stage's files, not the tests or the data


def test_prune_removes_test_suites_and_byte_code_only(tmp_path: Path, capsys: object) -> None:
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    for rel, size in (("pkg/__init__.py", 10), ("pkg/tests/test_x.py", 1000), ("pkg/__pycache__/a.pyc", 500),
                      ("pkg/testing/util.py", 20), ("other/sub/tests/data.bin", 2000)):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(b"x" * size)
    assert prune(tmp_path) == 3500
    left = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert left == ["pkg/__init__.py", "pkg/testing/util.py"]
    assert prune_main([str(tmp_path / "missing")]) == 2
