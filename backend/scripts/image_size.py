"""Size of each Docker image target, without a Docker engine: runs the ``pip install`` of the target's
``-deps`` stage from the Dockerfile into an empty prefix, prunes it as the Dockerfile does, adds the
application code the ``code`` stage copies and the base image's published size.

    python -m backend.scripts.image_size [--target runtime|trainer] [--base-mb 125]

Prints one line per target: ``runtime: N MB (base B + packages P + code C)``. The base image
(``python:3.11-slim``, linux/amd64, as ``docker image ls`` shows it) cannot be pulled here; its size is
the published figure, given by ``--base-mb``. Index options (the PyTorch CPU index) are left out: the
packages come from the index pip is configured with, at the same pinned versions.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from backend.scripts.prune_install import prune, tree_bytes
from backend.src.core.settings import REPO_ROOT

TARGETS = ("runtime", "trainer")
BASE_MB = 125.0  # python:3.11-slim (Debian 13), linux/amd64, uncompressed; Docker Hub lists ~42 MB compressed


def stage(dockerfile: str, name: str) -> str:
    found = re.search(rf"^FROM \S+ AS {re.escape(name)}\n(.*?)(?=^FROM |\Z)", dockerfile, flags=re.M | re.S)
    if found is None:
        raise SystemExit(f"Dockerfile: no stage {name!r}")
    return found.group(1)


def pip_args(dockerfile: str, target: str, prefix: Path) -> list[str]:
    """The ``pip install`` arguments of the target's deps stage, installing into ``prefix``."""
    run = re.search(r"RUN pip install (.*?)(?:&&|$)", stage(dockerfile, f"{target}-deps").replace("\\\n", " "),
                    flags=re.S)
    if run is None:
        raise SystemExit(f"Dockerfile: stage {target}-deps runs no pip install")
    args, skip = [], False
    for a in shlex.split(run.group(1)):
        if skip:
            skip = False
        elif a in ("--extra-index-url", "--index-url"):
            skip = True
        else:
            args.append(f"--prefix={prefix}" if a.startswith("--prefix=") else a)
    return [*args, "--ignore-installed", "--quiet", "--disable-pip-version-check"]


def code_bytes(dockerfile: str) -> int:
    total = 0
    for line in re.findall(r"^COPY (.*)$", stage(dockerfile, "code"), flags=re.M):
        for src in shlex.split(line)[:-1]:
            path = REPO_ROOT / src
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            total += sum(p.stat().st_size for p in files if "__pycache__" not in p.parts)
    return total


def measure(target: str, base_mb: float) -> str:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    with tempfile.TemporaryDirectory(prefix=f"levibot-{target}-") as tmp:
        prefix = Path(tmp) / "install"
        subprocess.run([sys.executable, "-m", "pip", "install", *pip_args(dockerfile, target, prefix)],
                       cwd=REPO_ROOT, check=True)
        prune(prefix)
        packages = tree_bytes(prefix) / 1e6
    code = code_bytes(dockerfile) / 1e6
    return (f"{target}: {base_mb + packages + code:.0f} MB (base {base_mb:.0f} + packages {packages:.0f} "
            f"+ code {code:.1f})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", choices=TARGETS, action="append", help="default: both")
    p.add_argument("--base-mb", type=float, default=BASE_MB, help="the base image's size (default %(default)s)")
    args = p.parse_args(argv)
    for target in args.target or TARGETS:
        print(measure(target, args.base_mb), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
