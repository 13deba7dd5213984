"""Strategies by name: parameters checked against each strategy's own model, LeviLang files resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.src.core.config import StrategyConfig, load_engine_config
from backend.src.core.errors import UsageError
from backend.src.core.settings import REPO_ROOT
from backend.src.trading.factory import REGISTRY, build_strategy, prepare_symbol
from backend.src.trading.levilang.strategy import LeviStrategy
from backend.src.trading.strategies.baselines import Momentum, SmaCrossover


def load(tmp_path: Path, body: str, symbol: str = "ETHUSDT") -> object:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(body)
    return load_engine_config(cfg, [symbol], prepare_symbol)[symbol]


def test_every_registered_strategy_builds_from_its_defaults() -> None:
    assert set(REGISTRY) == {"ensemble", "sma_crossover", "momentum", "ts_momentum", "buy_and_hold", "webhook"}
    for name in REGISTRY:
        s = build_strategy(StrategyConfig(name=name))
        assert s.fingerprint, name


def test_params_reach_the_strategy(tmp_path: Path) -> None:
    cfg = load(tmp_path, "symbols:\n  ETHUSDT:\n    strategy: {name: momentum, params: {lookback: 7}}\n")
    s = build_strategy(cfg.strategy)  # type: ignore[attr-defined]
    assert isinstance(s, Momentum) and s.lookback == 7 and s.threshold == 0.0
    flat = load(tmp_path, "defaults:\n  strategy: {name: sma_crossover, fast: 3, slow: 9}\n")
    sma = build_strategy(flat.strategy)  # type: ignore[attr-defined]
    assert isinstance(sma, SmaCrossover) and (sma.fast, sma.slow) == (3, 9)


def test_a_symbol_naming_another_strategy_does_not_inherit_the_default_params(tmp_path: Path) -> None:
    cfg = load(tmp_path, "defaults:\n  strategy: {name: momentum, params: {lookback: 30}}\n"
                         "symbols:\n  ETHUSDT:\n    strategy: {name: sma_crossover}\n")
    assert cfg.strategy.params == {}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("body", "message"), [
    ("defaults:\n  strategy: {name: sma_crosover}\n",
     "c.yaml: defaults.strategy.name: unknown strategy 'sma_crosover' (built in: buy_and_hold, ensemble, momentum, "
     "sma_crossover, ts_momentum, webhook; installed: "),
    ("symbols:\n  ETHUSDT:\n    strategy: {name: momentum, params: {lookbak: 5}}\n",
     "c.yaml: symbols.ETHUSDT.strategy.params.lookbak: unknown parameter of momentum (parameters: lookback, threshold, "
     "allow_short)"),
    ("defaults:\n  strategy: {name: sma_crossover, params: {fast: 30, slow: 10}}\n",
     "c.yaml: defaults.strategy.params: Value error, fast must be smaller than slow (parameters: fast, slow, "
     "allow_short)"),
    ("defaults:\n  strategy: {name: sma_crossover, params: {fast: soon}}\n",
     "c.yaml: defaults.strategy.params.fast: Input should be a valid integer, unable to parse string as an integer "
     "(parameters: fast, slow, allow_short)"),
    ("defaults:\n  strategy: {levilang: missing.levi.yaml}\n", "c.yaml: defaults.strategy.levilang: "),
    ("defaults:\n  strategy: {levilang: x.levi.yaml, params: {a: 1}}\n",
     "c.yaml: defaults.strategy.params: a LeviLang file holds its own parameters"),
])
def test_bad_strategies_are_one_line_naming_the_field(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        load(tmp_path, body)
    assert str(info.value).startswith(message.replace("c.yaml", str(tmp_path / "c.yaml"))), str(info.value)


def test_a_levilang_path_is_read_from_the_config_folder(tmp_path: Path) -> None:
    src = REPO_ROOT / "backend" / "strategies" / "mean_reversion.levi.yaml"
    (tmp_path / "mine.levi.yaml").write_text(src.read_text())
    cfg = load(tmp_path, "defaults:\n  strategy: {levilang: mine.levi.yaml}\n")
    st = cfg.strategy  # type: ignore[attr-defined]
    assert st.name == "levilang" and st.levilang == str((tmp_path / "mine.levi.yaml").resolve())
    assert len(st.source_hash) == 16
    assert isinstance(build_strategy(st), LeviStrategy)
    (tmp_path / "mine.levi.yaml").write_text("name: m\nentry: rsi(close, 14, 3) > 1\n")
    with pytest.raises(UsageError, match=r"strategy\.levilang: .*mine\.levi\.yaml: line 2: `rsi` takes 1 or 2"):
        load(tmp_path, "defaults:\n  strategy: {levilang: mine.levi.yaml}\n")


SHORTS = "backend/strategies/trend_long_short.levi.yaml"


@pytest.mark.parametrize(("body", "message"), [
    ("defaults: {market: perpetual, leverage: 0}\n",
     "c.yaml: defaults.leverage: Input should be greater than or equal to 1"),
    ("defaults: {market: perpetual, leverage: 500}\n",
     "c.yaml: defaults.leverage: Input should be less than or equal to 125"),
    ("defaults: {market: perpetual, margin_mode: cross}\n",
     "c.yaml: defaults.margin_mode: cross margin is not supported yet; use isolated"),
    ("symbols:\n  ETHUSDT: {leverage: 3}\n",
     "c.yaml: symbols.ETHUSDT.leverage: spot trades without leverage (set market: perpetual)"),
    (f"defaults:\n  strategy: {{levilang: {REPO_ROOT / SHORTS}}}\n",
     "c.yaml: defaults.strategy.levilang: trend_long_short.levi.yaml: entry_short: shorts need market: perpetual"),
    ("defaults:\n  strategy: {name: sma_crossover, allow_short: true}\n",
     "c.yaml: defaults.strategy.params.allow_short: shorts need market: perpetual"),
    ("defaults: {market: perpetual, funding_file: f.csv}\n",
     "c.yaml: defaults.funding_file: f.csv line 3: gap or disorder after 2023-11-14 16:00"),
    ("defaults: {market: perpetual, funding_file: missing.csv}\n", "c.yaml: defaults.funding_file: cannot read"),
])
def test_bad_perpetual_settings_are_one_line_naming_the_field(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "f.csv").write_text("timestamp,rate\n1699977600000,0.0001\n1700035200000,0.0001\n")
    with pytest.raises(UsageError) as info:
        load(tmp_path, body)
    assert str(info.value).startswith(message.replace("c.yaml", str(tmp_path / "c.yaml"))), str(info.value)
    assert "\n" not in str(info.value)


def test_a_perpetual_symbol_trades_short_rules_and_its_funding_file(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("timestamp,rate\n1699977600000,0.0001\n1700006400000,-0.0002\n")
    cfg = load(tmp_path, f"defaults:\n  market: perpetual\n  funding_file: f.csv\n"
                         f"  strategy: {{levilang: {REPO_ROOT / SHORTS}}}\n")
    assert cfg.funding_file == str(tmp_path / "f.csv")  # type: ignore[attr-defined]
    s = build_strategy(cfg.strategy)  # type: ignore[attr-defined]
    assert isinstance(s, LeviStrategy) and s.allow_short
