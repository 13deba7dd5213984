"""Every product module stands under a line of the floors contract (``setup.cfg``), by its folder.

``lint-imports`` checks the arrows between the floors the contract names; a module the contract does not
name is checked by nothing, so a new file outside every floor fails here. Single modules may stand only on
the top line (entry points), and the sprint plan's paths there only hand names on."""

from __future__ import annotations

import ast
import configparser
import re

from backend.src.core.settings import REPO_ROOT

# Package faces that hold the floors and define nothing.
CONTAINERS = {"backend", "backend.src", "backend.ml", "backend.ml.models"}
ENTRY_MODULES = {"backend.src.engine_manager", "backend.src.download_data"}  # real entry points, not hand-ons


def floors() -> list[list[str]]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO_ROOT / "setup.cfg")
    lines = cfg["importlinter:contract:floors"]["layers"].strip().splitlines()
    return [[m.strip() for m in re.split(r"[|:]", line)] for line in lines]


def product_modules() -> list[str]:
    out = []
    for path in sorted((REPO_ROOT / "backend").rglob("*.py")):
        rel = path.relative_to(REPO_ROOT).with_suffix("")
        if rel.parts[:2] == ("backend", "tests"):
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out.append(".".join(parts))
    return out


def covered_by(module: str, names: list[str]) -> str | None:
    return next((n for n in names if module == n or module.startswith(n + ".")), None)


def test_every_product_module_stands_under_a_floor() -> None:
    names = [n for line in floors() for n in line]
    loose = [m for m in product_modules() if m not in CONTAINERS and covered_by(m, names) is None]
    assert loose == [], f"modules under no line of the floors contract (setup.cfg): {loose}"


def test_floors_name_folders_and_single_modules_only_stand_on_top() -> None:
    top, *rest = floors()
    for line in rest:
        for name in line:
            assert (REPO_ROOT / name.replace(".", "/")).is_dir(), f"{name}: a floor below the top names a module"
    for name in top:
        if not (REPO_ROOT / name.replace(".", "/")).is_dir() and name not in ENTRY_MODULES:
            assert_hands_names_on(name)


def assert_hands_names_on(module: str) -> None:
    """A thin module: a docstring, imports, ``__all__``, and ``if __name__ == "__main__"`` calling what it
    imported."""
    tree = ast.parse((REPO_ROOT / (module.replace(".", "/") + ".py")).read_text())
    for node in tree.body:
        plain = isinstance(node, ast.ImportFrom | ast.Import) or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) or (
            isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["__all__"])
        main_guard = isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
        assert plain or main_guard, f"{module} does more than hand names on: {ast.unparse(node)[:80]}"


def test_the_cli_modules_named_like_tests_only_hand_names_on() -> None:
    """The sprint plan's ``backend.risk.test_*`` and ``run_fusion_test`` are CLIs: pytest is told to skip them."""
    clis = ["backend.risk.test_global_stop", "backend.risk.test_manager", "backend.ml.run_fusion_test"]
    cfg = configparser.ConfigParser()
    cfg.read(REPO_ROOT / "setup.cfg")
    addopts = cfg["tool:pytest"]["addopts"]
    for module in clis:
        assert_hands_names_on(module)
        assert f"--ignore={module.replace('.', '/')}.py" in addopts


def test_nothing_outside_the_venue_package_asks_whether_it_trades_live() -> None:
    """The venue factory decides paper or live once; everything else talks to a ``Venue``. The settings
    define the flag, the manager's CLI sets it from ``--live``: nothing else may read it or name a live
    venue's parts."""
    allowed = {"backend/src/core/settings.py": 2, "backend/src/engine_manager.py": 1}
    asks = re.compile(r"\blive_trading\b|\bLiveVenue\b|\bLiveExecutor\b|\bProtectiveStop\b|\.live is (not )?None")
    found = {}
    for path in sorted((REPO_ROOT / "backend").rglob("*.py")):
        rel = str(path.relative_to(REPO_ROOT))
        if rel.startswith(("backend/tests/", "backend/src/venue/")):
            continue
        hits = len(asks.findall(path.read_text()))
        if hits > allowed.get(rel, 0):
            found[rel] = hits
    assert found == {}, f"outside the venue package, paper vs live is asked in: {found}"
