from __future__ import annotations

from pathlib import Path

import pytest

from backend.src.core.config import load_engine_config, parse_source, parse_symbols
from backend.src.core.errors import UsageError


def test_symbols_normalised() -> None:
    assert parse_symbols("btcusdt, ETH/USDT ,SOLUSDT") == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.mark.parametrize("bad", ["", "  ", "BTC,,ETH", "BTC$", "A", "BTCUSDT,btcusdt"])
def test_symbols_rejected(bad: str) -> None:
    with pytest.raises(UsageError, match="--symbols"):
        parse_symbols(bad)


def test_source_specs() -> None:
    assert str(parse_source("synthetic")) == "synthetic"
    assert str(parse_source("replay:/x/y.csv")) == "replay:/x/y.csv"
    for bad in ("replay:", "live", "file:/x"):
        with pytest.raises(UsageError, match="--source"):
            parse_source(bad)


def test_defaults_merge_per_symbol(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "defaults:\n  size_usd: 500\n  strategy: {fast: 3, slow: 9}\n"
        "symbols:\n  ETHUSDT:\n    size_usd: 900\n    strategy: {slow: 12}\n"
    )
    out = load_engine_config(cfg, ["BTCUSDT", "ETHUSDT"])
    assert out["BTCUSDT"].size_usd == 500 and out["BTCUSDT"].strategy.params["slow"] == 9
    assert out["ETHUSDT"].size_usd == 900
    assert (out["ETHUSDT"].strategy.params["fast"], out["ETHUSDT"].strategy.params["slow"]) == (3, 12)


def test_no_file_means_defaults() -> None:
    out = load_engine_config(None, ["BTCUSDT"])
    assert out["BTCUSDT"].fee_bps == 10


def test_error_names_symbol_and_field(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("symbols:\n  ETHUSDT:\n    fee_bps: 5000\n")
    with pytest.raises(UsageError, match=r"symbols\.ETHUSDT\.fee_bps: Input should be less than or equal"):
        load_engine_config(cfg, ["ETHUSDT"])


@pytest.mark.parametrize(("field", "value"), [
    ("timeframe", "0m"), ("timeframe", "00m"), ("seed", -1), ("initial_equity", 1e308),
    ("start_price", 1e308), ("size_usd", 1e300), ("max_position_usd", float("inf")),
])
def test_meaningless_settings_are_refused_naming_the_field(tmp_path: Path, field: str, value: object) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"defaults:\n  {field}: {value!r}\n".replace("'", "").replace("inf", ".inf"))
    with pytest.raises(UsageError, match=rf"defaults\.{field}"):
        load_engine_config(cfg, ["BTCUSDT"])


def test_lowercase_config_symbols_are_normalised(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("symbols:\n  btcusdt: {size_usd: 700}\n  eth/usdt:\n")
    from backend.src.core.config import load_active  # noqa: PLC0415

    out = load_active(cfg, None)
    assert list(out) == ["BTCUSDT", "ETHUSDT"] and out["BTCUSDT"].size_usd == 700


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_an_empty_config_file_is_refused(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(UsageError, match="is empty"):
        load_engine_config(cfg, ["BTCUSDT"])
