"""Strategy name → class: the one place that knows every implementation.

``prepare`` checks a config's strategy when the config is loaded (an unknown name or parameter is
one error naming it; a LeviLang file is compiled and its content hash recorded; a Python plugin —
``python: module:Class`` or a ``levibot.strategies`` entry point's name — is imported, its parameters
validated by its own ``Params`` and its file's hash recorded); ``build_strategy`` makes the object an
engine or the backtester trades.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from backend.src.core.config import StrategyConfig, SymbolConfig
from backend.src.market.perpetual import funding_rates
from backend.src.models.backends import ONNX, Backends
from backend.src.trading import plugins
from backend.src.trading.feeds import SignalFeed
from backend.src.trading.levilang import Compiled, compile_file
from backend.src.trading.levilang.errors import LeviError
from backend.src.trading.levilang.strategy import LeviStrategy
from backend.src.trading.strategies.base import Strategy, fingerprint
from backend.src.trading.strategies.baselines import BuyAndHold, Momentum, SmaCrossover, TsMomentum
from backend.src.trading.strategies.ensemble import ModelWatcher, build_ml_strategy
from backend.src.trading.strategies.webhook import TargetLog, WebhookStrategy

REGISTRY: dict[str, type[Strategy]] = {c.name: c for c in (ModelWatcher, SmaCrossover, Momentum, TsMomentum,
                                                            BuyAndHold, WebhookStrategy)}


def params_of(cfg: StrategyConfig) -> BaseModel:
    """The strategy's parameters, validated by its own model (ValueError naming the field)."""
    if cfg.python is not None:
        return validate_params(plugins.load(cfg.python), cfg.params, cfg.python)
    cls = REGISTRY.get(cfg.name)
    if cls is None:
        installed = ", ".join(sorted(plugins.entry_points())) or "none"
        raise ValueError(f"strategy.name: unknown strategy {cfg.name!r} (built in: {', '.join(sorted(REGISTRY))}; "
                         f"installed: {installed}; or levilang: FILE, or python: package.module:Class)")
    return validate_params(cls, cfg.params, cfg.name)


def validate_params(cls: type[Strategy], params: dict[str, object], label: str) -> BaseModel:
    try:
        return cls.Params.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = "unknown parameter of " + label if first["type"] == "extra_forbidden" else first["msg"]
        known = ", ".join(cls.Params.model_fields) or "none"
        raise ValueError(f"strategy.params{'.' + loc if loc else ''}: {msg} (parameters: {known})") from exc


def prepare(cfg: StrategyConfig, base_dir: Path) -> StrategyConfig:
    """A loaded config's strategy, checked; a LeviLang path made absolute and its hash recorded."""
    return _prepared(cfg, base_dir)[0]


def _prepared(cfg: StrategyConfig, base_dir: Path) -> tuple[StrategyConfig, Compiled | None]:
    """``prepare``, and the compiled LeviLang file when the strategy is one (compiled once)."""
    if cfg.levilang is None:
        if cfg.python is None and cfg.name not in REGISTRY and cfg.name in plugins.entry_points():
            cfg = cfg.model_copy(update={"python": plugins.entry_points()[cfg.name], "name": "python"})
        params_of(cfg)
        if cfg.python is not None:
            cfg = cfg.model_copy(update={"source_hash": plugins.source_hash(cfg.python)})
        return cfg, None
    path = Path(cfg.levilang).expanduser()
    path = path if path.is_absolute() else (base_dir / path)
    try:
        compiled = compile_file(path)
    except LeviError as exc:
        raise ValueError(f"strategy.levilang: {exc}") from exc
    return cfg.model_copy(update={"levilang": str(path.resolve()), "source_hash": compiled.source_hash}), compiled


def from_argument(arg: str, params: dict[str, object] | None = None, check: bool = True) -> StrategyConfig:
    """A command line's STRATEGY, prepared: a ``*.levi.yaml`` file, a plugin class (``package.module:Class``) or a
    built-in or installed name (ValueError naming what is wrong)."""
    if arg.endswith((".yaml", ".yml")) or Path(arg).is_file():
        return prepare(StrategyConfig(levilang=arg), Path.cwd())
    if ":" in arg:
        return prepare(StrategyConfig(python=arg, params=params or {}, check=check), Path.cwd())
    return prepare(StrategyConfig(name=arg, params=params or {}), Path.cwd())


def prepare_symbol(cfg: SymbolConfig, base_dir: Path) -> SymbolConfig:
    """A loaded symbol config, checked beyond its fields: the strategy (``prepare``), shorts only where the
    market can be sold short, a funding file read whole (gaps, NaN) — ValueError naming the field."""
    strategy, compiled = _prepared(cfg.strategy, base_dir)
    cfg = cfg.model_copy(update={"strategy": strategy})
    if not cfg.perpetual:
        if compiled is not None and compiled.entry_short is not None:
            raise ValueError(f"strategy.levilang: {Path(compiled.path).name}: entry_short: shorts need "
                             "market: perpetual (this symbol trades spot)")
        if cfg.strategy.params.get("allow_short"):
            raise ValueError("strategy.params.allow_short: shorts need market: perpetual (this symbol trades spot)")
        return cfg
    if cfg.funding_file:
        path = Path(cfg.funding_file).expanduser()
        cfg = cfg.model_copy(update={"funding_file": str(path if path.is_absolute() else (base_dir / path).resolve())})
        funding_rates(cfg)
    return cfg


def build_strategy(cfg: StrategyConfig, models_root: Path | None = None,
                   extras: Callable[[], dict[str, float]] | None = None, backends: Backends = ONNX,
                   signals: SignalFeed | TargetLog | None = None) -> Strategy:
    """``ensemble``: the production model under ``models_root`` when there is one, else the SMA;
    ``extras`` supplies outside features (news score, on-chain, funding) for the latest candle;
    ``backends``: what runs the model (the settings' choice); ``signals``: a ``webhook`` engine's signal feed (or,
    replaying one, its decisions from the journal)."""
    if cfg.levilang is not None:
        return LeviStrategy(compile_file(Path(cfg.levilang)), models_root=models_root, extras=extras,
                            backends=backends)
    params = params_of(cfg).model_dump()
    if cfg.python is not None:
        return build_plugin(cfg.python, params)
    if cfg.name == "webhook":
        return WebhookStrategy(**params, feed=signals if isinstance(signals, SignalFeed) else None,
                               replay=signals if isinstance(signals, TargetLog) else None)
    if cfg.name == "ensemble":
        return build_ml_strategy(params["fast"], params["slow"], models_root, extras, backends, params["allow_short"])
    return REGISTRY[cfg.name](**params)


def build_plugin(spec: str, params: dict[str, object]) -> Strategy:
    """A plugin class made with its validated parameters (whatever its constructor raises: ValueError)."""
    cls = plugins.load(spec)
    try:
        strategy = cls(**params)
    except Exception as exc:  # noqa: BLE001 - a plugin's constructor can raise anything; the config is refused
        raise ValueError(f"strategy.python: {spec}: {cls.__name__}(...) raised {type(exc).__name__}: "
                         f"{str(exc)[:300]}") from None
    strategy.fingerprint = fingerprint(f"{spec}@{plugins.source_hash(spec)}", params)
    strategy.label = spec
    return strategy
