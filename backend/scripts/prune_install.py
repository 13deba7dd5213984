"""Remove what an image never runs from a ``pip install --prefix`` tree: the packages' own test suites
(directories named ``tests``) and byte-code caches. The Dockerfile runs it on each target's packages
and ``backend.scripts.image_size`` on its measuring install, so both prune alike.

    python backend/scripts/prune_install.py PREFIX

Byte code is compiled at run time into ``PYTHONPYCACHEPREFIX`` (the data volume), not into the image.
Standard library only: it runs in the Dockerfile's build stage before anything is installed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PRUNED = ("tests", "__pycache__")


def tree_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() or p.is_symlink())


def prune(prefix: Path) -> int:
    """Delete the pruned directories under ``prefix``'s site-packages; returns the bytes freed."""
    freed = 0
    for site in prefix.glob("lib/python3*/site-packages"):
        for d in sorted(site.rglob("*"), key=lambda p: len(p.parts)):
            if d.name in PRUNED and d.is_dir() and not d.is_symlink() and d.exists():
                freed += tree_bytes(d)
                shutil.rmtree(d)
    return freed


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: prune_install.py PREFIX (a pip --prefix directory)", file=sys.stderr)
        return 2
    freed = prune(Path(argv[0]))
    print(f"pruned {freed / 1e6:.0f} MB of test suites and byte-code caches")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
