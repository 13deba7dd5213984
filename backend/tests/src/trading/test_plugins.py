"""Python strategy plugins: loaded by ``module:Class`` or entry-point name, parameters validated at load,
every failure one line naming ``strategy.python``, hot reload by file hash (a broken edit keeps the
loaded class), and a plugin that raises handled by ``on_failed`` in the shared trading session."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.risk.policy import RiskPolicy
from backend.src.core.config import StrategyConfig, SymbolConfig, load_engine_config
from backend.src.core.errors import UsageError
from backend.src.core.types import Candle
from backend.src.market.candles import SyntheticSource
from backend.src.trading import plugins
from backend.src.trading.factory import build_strategy, prepare, prepare_symbol
from backend.src.trading.simulator import simulate

PLUGIN = '''
from pydantic import BaseModel, ConfigDict, Field
from backend.src.trading.api import Signal, Strategy

class P(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = Field(default=5, ge=1)

class Flip(Strategy):
    Params = P
    VERSION = 1

    def __init__(self, every: int = 5) -> None:
        self.every, self.n = every, 0

    def on_candle(self, candle):
        self.n += 1
        return Signal(1.0 if (self.n // self.every) % 2 == 0 else 0.0, 0.5, 0.0, "flip")
'''

RAISES = '''
from backend.src.trading.api import Signal, Strategy

class Boom(Strategy):
    def __init__(self) -> None:
        self.n = 0

    def on_candle(self, candle):
        self.n += 1
        if self.n > 20:
            raise ZeroDivisionError("a bug on candle %d" % self.n)
        return Signal(1.0, 0.5, 0.0, "long")
'''


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in set(sys.modules) - before:
        if name.startswith("plug_"):
            del sys.modules[name]


def write(d: Path, name: str, text: str) -> None:
    (d / f"{name}.py").write_text(text)
    time.sleep(0.01)


def candles(n: int = 200) -> list[Candle]:
    return SyntheticSource("BTCUSDT", seed=3, interval_s=3600, timeframe="1h", annual_volatility=0.8, price=100.0,
                           now=1_700_000_000 + n * 3600).warmup(n)


def test_a_plugin_loads_with_validated_params_and_builds(plugin_dir: Path) -> None:
    write(plugin_dir, "plug_a", PLUGIN)
    cfg = prepare(StrategyConfig(python="plug_a:Flip", params={"every": 3}), plugin_dir)
    assert cfg.name == "python" and cfg.source_hash == plugins.file_hash(plugin_dir / "plug_a.py")
    s = build_strategy(cfg)
    assert type(s).__name__ == "Flip" and s.every == 3 and s.fingerprint  # type: ignore[attr-defined]


@pytest.mark.parametrize(("spec", "params", "text", "message"), [
    ("plug_b:Flip", {"every": 0}, PLUGIN,
     "strategy.params.every: Input should be greater than or equal to 1 (parameters: every)"),
    ("plug_b:Flip", {"evry": 2}, PLUGIN, "strategy.params.evry: unknown parameter of plug_b:Flip (parameters: every)"),
    ("plug_b:Nope", {}, PLUGIN, "strategy.python: plug_b:Nope: Nope not found in plug_b"),
    ("plug_b:P", {}, PLUGIN, "strategy.python: plug_b:P: P not a Strategy subclass"),
    ("plug_b:Flip", {}, "import not_a_module_anywhere\n",
     "strategy.python: plug_b:Flip: importing plug_b failed (ModuleNotFoundError: No module named "),
    ("plug_b:Flip", {}, "def broken(:\n", "strategy.python: plug_b:Flip: importing plug_b failed (SyntaxError: "),
    ("plug_b:Flip", {}, "raise RuntimeError('at import')\n",
     "strategy.python: plug_b:Flip: importing plug_b failed (RuntimeError: at import)"),
])
def test_every_failure_is_one_line_naming_the_field(plugin_dir: Path, spec: str, params: dict[str, object],
                                                     text: str, message: str) -> None:
    write(plugin_dir, "plug_b", text)
    cfg = plugin_dir / "c.yaml"
    cfg.write_text(f"defaults:\n  strategy: {{python: '{spec}', params: {params}}}\n")
    with pytest.raises(UsageError) as info:
        load_engine_config(cfg, ["ETHUSDT"], prepare_symbol)
    text_ = str(info.value)
    assert "\n" not in text_ and text_.startswith(f"{cfg}: defaults.") and message in text_, text_


def test_config_refuses_a_malformed_spec_and_two_sources() -> None:
    with pytest.raises(ValueError, match="python"):
        StrategyConfig(python="not a spec")
    with pytest.raises(ValueError, match="either name or python"):
        StrategyConfig(name="momentum", python="a.b:C")
    with pytest.raises(ValueError, match="either levilang or python"):
        StrategyConfig(levilang="x.levi.yaml", python="a.b:C")


def test_an_edited_file_reloads_and_a_broken_edit_keeps_the_loaded_class(plugin_dir: Path) -> None:
    write(plugin_dir, "plug_c", PLUGIN)
    first = plugins.load("plug_c:Flip")
    assert plugins.load("plug_c:Flip") is first, "imported once: no re-import while the file is unchanged"
    write(plugin_dir, "plug_c", PLUGIN.replace("VERSION = 1", "VERSION = 2"))
    second = plugins.load("plug_c:Flip")
    assert second is not first and second.VERSION == 2  # type: ignore[attr-defined]
    write(plugin_dir, "plug_c", "def broken(:\n")
    with pytest.raises(ValueError, match="SyntaxError"):
        prepare(StrategyConfig(python="plug_c:Flip"), plugin_dir)
    assert sys.modules["plug_c"].Flip is second, "the loaded version stays"


def test_an_installed_plugin_is_found_by_its_entry_point_name() -> None:
    eps = plugins.entry_points()
    assert eps.get("channel_breakout") == "levibot_examples.breakout:ChannelBreakout", eps
    cfg = prepare(StrategyConfig(name="channel_breakout", params={"lookback": 10}), Path.cwd())
    assert cfg.python == "levibot_examples.breakout:ChannelBreakout" and cfg.source_hash
    assert type(build_strategy(cfg)).__name__ == "ChannelBreakout"


def test_a_spot_symbol_refuses_a_plugin_meant_to_short(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("defaults:\n  strategy: {name: channel_breakout, allow_short: true}\n")
    with pytest.raises(UsageError, match="allow_short: shorts need market: perpetual"):
        load_engine_config(cfg, ["ETHUSDT"], prepare_symbol)


@pytest.mark.parametrize("on_failed", ["flatten", "hold"])
def test_a_plugin_that_raises_is_logged_once_and_on_failed_handles_the_position(
        plugin_dir: Path, on_failed: str, caplog: pytest.LogCaptureFixture) -> None:
    write(plugin_dir, f"plug_r{on_failed}", RAISES)
    cfg = SymbolConfig(strategy=StrategyConfig(python=f"plug_r{on_failed}:Boom"), on_failed=on_failed,  # type: ignore[arg-type]
                       size_usd=1000)
    strategy = build_strategy(prepare(cfg.strategy, plugin_dir))
    with caplog.at_level(logging.ERROR, logger="backend.src.trading.session"):
        sim = simulate("BTCUSDT", cfg, strategy, candles(60), RiskPolicy())
    errors = [r for r in caplog.records if "raised" in r.getMessage()]
    assert len(errors) == 1 and "ZeroDivisionError: a bug on candle 21" in errors[0].getMessage()
    assert sim.position[15] > 0, "long before the bug"
    if on_failed == "flatten":
        assert sim.position[-1] == 0 and sim.fills[-1].side == "sell"
    else:
        assert sim.position[-1] == sim.position[20] > 0 and len(sim.fills) == 1
