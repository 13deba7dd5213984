"""Versioned model registry under ``<data dir>/models/``.

``ensemble_YYYYMMDD_HHMMSS/`` holds the artifact files and ``model_metadata.json``
(version, train_date, data range, backtest figures, hyperparameters, code version, sha256 of
every file). A version is written in a temp directory and renamed into place, so a
half-written model is never visible. ``current`` is a symlink to the production version,
swapped atomically (new link + rename). Nothing is loaded whose checksums don't match.

``python -m backend.src.models.registry list | promote VERSION | rollback | verify VERSION``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess  # noqa: S404 - git rev-parse for the code version
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.src.core.errors import EXIT_USAGE, UsageError
from backend.src.core.fsio import fsync_dir
from backend.src.core.settings import REPO_ROOT, cli_path, cli_settings

KEEP = 7
METADATA = "model_metadata.json"
HISTORY = "promotions.jsonl"


class ChecksumError(UsageError):
    """An artifact does not match its metadata: tampered, truncated or corrupted."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def code_version() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,  # noqa: S607
                             capture_output=True, text=True, timeout=5, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Registry:
    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.clock = clock

    @property
    def current_link(self) -> Path:
        return self.root / "current"

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.is_symlink()
                      and p.name.startswith("ensemble_") and (p / METADATA).exists())

    def metadata(self, version: str) -> dict[str, Any]:
        path = self.root / version / METADATA
        if not path.exists():
            raise UsageError(f"model version {version!r} not found in {self.root}")
        return dict(json.loads(path.read_text()))

    def current(self) -> str | None:
        link = self.current_link
        return os.readlink(link) if link.is_symlink() else None

    def save(self, write: Callable[[Path], list[Path]], meta: dict[str, Any]) -> str:
        """Write a new version with ``write(tmpdir)``, checksum it, rename it into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean_leftovers()
        version = time.strftime("ensemble_%Y%m%d_%H%M%S", time.gmtime(self.clock()))
        while (self.root / version).exists():  # two saves in one second
            version += "x"
        tmp = self.root / f".tmp-{version}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            files = write(tmp)
            full = {**meta, "version": version, "train_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(
                self.clock())), "code_version": code_version(),
                "sha256": {f.relative_to(tmp).as_posix(): sha256(f) for f in sorted(files)}}
            (tmp / METADATA).write_text(json.dumps(full, indent=1, default=float))
            for f in [*files, tmp / METADATA]:
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
            tmp.rename(self.root / version)
            fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return version

    def clean_leftovers(self) -> list[str]:
        """Remove temp dirs and links of writers that died (``kill -9`` mid-save): never visible
        as versions, but they take disk space."""
        removed = []
        for p in self.root.glob(".tmp-*"):
            pid = p.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink()
                removed.append(p.name)
        for p in self.root.glob(".current-*"):
            pid = p.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                p.unlink()
                removed.append(p.name)
        return removed

    def verify(self, version: str) -> Path:
        """The version's directory, once every file matches its sha256; ChecksumError otherwise."""
        meta = self.metadata(version)
        d = self.root / version
        sums = meta.get("sha256") or {}
        if not sums:
            raise ChecksumError(f"{version}: metadata lists no checksums")
        for name, want in sums.items():
            f = d / name
            if not f.is_file():
                raise ChecksumError(f"{version}: {name} is missing")
            if sha256(f) != want:
                raise ChecksumError(f"{version}: {name} does not match its sha256 (tampered or corrupted)")
        return d

    def promote(self, version: str, reason: str = "promote") -> None:
        self.verify(version)
        previous = self.current()
        tmp = self.root / f".current-{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(version)
        tmp.replace(self.current_link)  # atomic swap
        fsync_dir(self.root)
        with (self.root / HISTORY).open("a") as f:
            f.write(json.dumps({"at": self.clock(), "from": previous, "to": version, "reason": reason}) + "\n")
        self.prune()

    def rollback(self) -> str:
        """Back to the production version before the current one."""
        history = [json.loads(x) for x in (self.root / HISTORY).read_text().splitlines()] \
            if (self.root / HISTORY).exists() else []
        cur = self.current()
        for entry in reversed(history):
            if entry["to"] == cur and entry["from"] and (self.root / entry["from"]).is_dir():
                self.promote(entry["from"], reason=f"rollback from {cur}")
                return str(entry["from"])
        raise UsageError("rollback: no previous production version to go back to")

    def prune(self) -> list[str]:
        """Keep the newest ``KEEP`` versions (never the current one, nor the one before it)."""
        keep = set(self.versions()[-KEEP:]) | {self.current()}
        history = (self.root / HISTORY).read_text().splitlines() if (self.root / HISTORY).exists() else []
        if history:
            keep.add(json.loads(history[-1]).get("from"))
        removed = [v for v in self.versions() if v not in keep]
        for v in removed:
            shutil.rmtree(self.root / v, ignore_errors=True)
        return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="registry", description="LeviBot model registry")
    ap.add_argument("--data-dir", type=cli_path, default=None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    sub.add_parser("promote").add_argument("version")
    sub.add_parser("verify").add_argument("version")
    sub.add_parser("rollback")
    args = ap.parse_args(argv)
    settings = cli_settings(args.data_dir)
    reg = Registry(settings.data_dir / "models")
    try:
        if args.cmd == "list":
            cur = reg.current()
            for v in reg.versions():
                m = reg.metadata(v)
                print(f"{'*' if v == cur else ' '} {v}  sharpe {m.get('backtest_sharpe', float('nan')):.2f}  "
                      f"accuracy {m.get('accuracy', float('nan')):.3f}  data {m.get('data_range')}")
        elif args.cmd == "promote":
            reg.promote(args.version)
            print(f"current -> {args.version}")
        elif args.cmd == "verify":
            reg.verify(args.version)
            print(f"{args.version}: checksums ok")
        else:
            print(f"current -> {reg.rollback()}")
    except UsageError as exc:
        print(f"registry: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
