"""The runtime image's package set (requirements-runtime.txt) against the full install (requirements.txt)."""

from __future__ import annotations

import importlib.metadata as md
import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from backend.src.core.settings import REPO_ROOT


def pins(name: str) -> dict[str, tuple[str, set[str]]]:
    """canonical name -> (version, extras) of a requirements file's ``name[extras]==version`` lines."""
    out = {}
    for line in (REPO_ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            out[canonicalize_name(req.name)] = (re.sub(r"^==", "", str(req.specifier)), set(req.extras))
    return out


def dependencies(name: str, extras: set[str]) -> set[str]:
    """The installed distribution's requirements (markers evaluated, with its requested extras)."""
    out = set()
    for text in md.requires(name) or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ["", *extras]):
            out.add(canonicalize_name(req.name))
    return out


def full_install() -> set[str]:
    """Every distribution requirements.txt installs (its closure), as canonical names."""
    full = pins("requirements.txt")
    seen, todo = set(), [(n, extras) for n, (_, extras) in full.items()]
    while todo:
        name, extras = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [(d, set()) for d in dependencies(name, extras) if d not in seen]
    return seen


def training_only_modules() -> set[str]:
    """Top-level import names of what the full install has and the runtime image lacks."""
    runtime = set(pins("requirements-runtime.txt"))
    absent = full_install() - runtime
    return {module for module, dists in md.packages_distributions().items()
            if module.isidentifier() and {canonicalize_name(d) for d in dists} <= absent}
