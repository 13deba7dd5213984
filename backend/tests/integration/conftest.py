from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backend.src.redis_launcher import EmbeddedRedis
from backend.tests.conftest import FAST_CONFIG, ManagerProc, fast_env


@pytest.fixture
def engine_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "engines.yaml"
    cfg.write_text(FAST_CONFIG)
    return cfg


@pytest.fixture
def start_manager(
    redis_server: EmbeddedRedis, ns: str, data_dir: Path, engine_config: Path
) -> Iterator[Callable[..., ManagerProc]]:
    started: list[ManagerProc] = []

    def start(
        symbols: list[str], *args: str, url: str | None = None, data: Path | None = None, **env: object
    ) -> ManagerProc:
        m = ManagerProc(
            ["--symbols", ",".join(symbols), "--config", str(engine_config), *args],
            fast_env(url or redis_server.url, ns, data or data_dir, **env),
        )
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()
