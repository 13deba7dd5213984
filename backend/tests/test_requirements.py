"""The runtime image's package list (requirements-runtime.txt, installed with ``--no-deps``) is a closed
subset of the full install: the same versions as installed from requirements.txt, every dependency
listed (but the documented omissions), and none of the training stack."""

from __future__ import annotations

import importlib.metadata as md

from backend.tests.runtime_set import dependencies, pins

TRAINING_ONLY = {"torch", "lightning", "pytorch-forecasting", "optuna", "lightgbm", "scipy", "scikit-learn", "onnx",
                 "chdb-core-lite", "pyarrow"}
OMITTED = {"fonttools"}  # matplotlib's, for PDF/PS/SVG fonts; the bot's charts are Agg PNGs


def test_runtime_pins_are_the_full_installs_versions() -> None:
    runtime, full = pins("requirements-runtime.txt"), pins("requirements.txt")
    for name, (version, _) in runtime.items():
        assert md.version(name) == version, f"{name}: runtime pins {version}, the full install has {md.version(name)}"
        if name in full:
            assert full[name][0] == version, f"{name}: runtime pins {version}, requirements.txt {full[name][0]}"
    assert not TRAINING_ONLY & set(runtime), f"training stack in the runtime: {TRAINING_ONLY & set(runtime)}"
    missing = {n for n in full if n not in runtime and n not in TRAINING_ONLY and n not in OMITTED}
    assert not missing, f"in requirements.txt, neither runtime nor training-only: {missing}"


def test_runtime_lists_every_dependency() -> None:
    runtime, full = pins("requirements-runtime.txt"), pins("requirements.txt")
    unlisted = []
    for name in runtime:
        for dep in sorted(dependencies(name, full.get(name, ("", set()))[1])):
            if dep not in runtime and dep not in OMITTED:
                unlisted.append(f"{dep} (needed by {name})")
    assert not unlisted, f"not in requirements-runtime.txt: {unlisted}"
