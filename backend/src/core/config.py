"""Per-symbol engine config (YAML), the ``--symbols`` list and the ``--source`` spec.

Every validation error names the field, e.g.
``config.yaml: symbols.BTCUSDT.size_usd: Input should be greater than 0``.
"""

from __future__ import annotations

import errno
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backend.src.core.errors import UsageError

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
# Upper bounds that keep money arithmetic finite and meaningful (a typo like 1e308 is refused).
MAX_MONEY = 1e12
MAX_PRICE = 1e9


STRATEGY_KEYS = ("name", "params", "levilang", "python", "check", "source_hash")
PLUGIN_SPEC = r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$"  # package.module:ClassName
USD_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI", "USD")
OTHER_QUOTES = ("BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "GBP", "JPY")


class StrategyConfig(BaseModel):
    """Which strategy a symbol trades: a registered name with its parameters (checked against that
    strategy's own model when the config is loaded), a LeviLang file, or a Python plugin class
    (``python: package.module:ClassName``, or a name from the ``levibot.strategies`` entry points)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # ensemble: the production ML model when one exists, else the SMA crossover (params fast/slow)
    name: str = Field(default="ensemble", pattern=r"^[a-z][a-z0-9_]{0,40}$")
    params: dict[str, Any] = Field(default_factory=dict)
    levilang: str | None = None  # a *.levi.yaml file (relative paths: to the config file's folder)
    python: str | None = Field(default=None, pattern=PLUGIN_SPEC)  # a plugin class, package.module:ClassName
    check: bool = True  # plugins: the look-ahead and warm-up check runs before the strategy trades
    source_hash: str = ""  # levilang/python: the file's content hash (a changed file reloads engines)

    @model_validator(mode="before")
    @classmethod
    def _flat_params(cls, v: object) -> object:
        """``{name: momentum, lookback: 30}`` means ``{name: momentum, params: {lookback: 30}}``."""
        if not isinstance(v, dict):
            return v
        flat = {k: x for k, x in v.items() if k not in STRATEGY_KEYS}
        if not flat:
            return v
        params = v.get("params") or {}
        if not isinstance(params, dict):
            return v
        return {**{k: x for k, x in v.items() if k in STRATEGY_KEYS}, "params": {**params, **flat}}

    @model_validator(mode="after")
    def _one_source(self) -> StrategyConfig:
        if self.levilang is not None and self.python is not None:
            raise ValueError("give either levilang or python, not both")
        if self.levilang is not None:
            if "name" in self.model_fields_set and self.name != "levilang":
                raise ValueError("give either name or levilang, not both")
            if self.params:
                raise ValueError("params: a LeviLang file holds its own parameters")
            object.__setattr__(self, "name", "levilang")
        elif self.python is not None:
            if "name" in self.model_fields_set and self.name != "python":
                raise ValueError("give either name or python, not both")
            object.__setattr__(self, "name", "python")
        elif self.name == "levilang":
            raise ValueError("levilang: the file is missing (strategy: {levilang: path/to/file.levi.yaml})")
        elif self.name == "python":
            raise ValueError("python: the class is missing (strategy: {python: package.module:ClassName})")
        return self


QUOTES_LONGEST_FIRST = tuple(sorted(USD_QUOTES + OTHER_QUOTES, key=len, reverse=True))  # FDUSD before USD


def quote_of(symbol: str) -> str | None:
    """The quote currency of a symbol like ETHBTC (None when it is not a known one)."""
    for q in QUOTES_LONGEST_FIRST:
        if symbol.endswith(q) and len(symbol) > len(q):
            return q
    return None


class SymbolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: StrategyConfig = StrategyConfig()
    # Notional of one entry. Money fields are in the pair's quote currency: size_quote directly; the
    # *_usd fields are converted through quote_usd (USD per unit of quote) when the quote is not a
    # USD stablecoin, and refused without it.
    size_quote: float | None = Field(default=None, gt=0, le=MAX_MONEY)
    size_usd: float = Field(default=1000.0, gt=0, le=MAX_MONEY)
    quote_usd: float | None = Field(default=None, gt=0, le=MAX_PRICE)
    # Re-size an open position only when the strategy's target changes (None), or also when its size
    # drifts beyond this fraction of the target (e.g. 0.25).
    rebalance_band: float | None = Field(default=None, ge=0, le=10)
    initial_equity: float = Field(default=10_000.0, gt=0, le=MAX_MONEY)
    fee_bps: float = Field(default=10.0, ge=0, le=1000)  # taker fee, basis points
    maker_fee_bps: float = Field(default=10.0, ge=-100, le=1000)  # maker fee (negative: rebate)
    fees_from_exchange: bool = True  # live: the exchange's taker/maker fees (ccxt market) replace the two above
    slippage_bps: float = Field(default=5.0, ge=0, le=1000)
    order_type: Literal["market", "limit"] = "market"
    limit_offset_bps: float = Field(default=5.0, ge=0, le=5000)  # limit orders rest this far inside the close
    max_participation: float = Field(default=0.25, gt=0, le=1)  # of a candle's volume a limit order can take
    stop_loss_pct: float = Field(default=0.0, ge=0, lt=100)  # 0: off
    take_profit_pct: float = Field(default=0.0, ge=0, le=10_000)  # 0: off
    # Exchange rules for replay/synthetic (live: from the exchange's market unless set here).
    tick_size: float = Field(default=0.0, ge=0, le=MAX_PRICE)
    step_size: float = Field(default=0.0, ge=0, le=MAX_MONEY)
    min_qty: float = Field(default=0.0, ge=0, le=MAX_MONEY)
    min_notional: float = Field(default=0.0, ge=0, le=MAX_MONEY)
    max_position_usd: float = Field(default=5000.0, gt=0, le=MAX_MONEY)
    timeframe: str = Field(default="1m", pattern=r"^[1-9]\d{0,5}[smhd]$")  # synthetic candles stand for this
    annual_volatility: float = Field(default=0.7, gt=0, le=10)  # synthetic feed
    start_price: float = Field(default=100.0, gt=0, le=MAX_PRICE)  # synthetic feed
    seed: int = Field(default=7, ge=0, le=2**32 - 1)  # numpy seeds are unsigned 32-bit
    enabled: bool = True  # false: not traded even if named on --symbols (hot-reloadable)
    # After 5 failed restarts the engine stays down. flatten: its position is closed at once
    # (paper: at the last price; live: a market order); hold: it is kept, alerted and shown.
    on_failed: Literal["flatten", "hold"] = "flatten"
    # Live only: a stop-loss order rests on the exchange this far below the average entry while a
    # position is open, so a position is protected even when no engine is running.
    protective_stop_pct: float = Field(default=5.0, gt=0, lt=100)
    # Resident memory above which the watchdog restarts the engine gracefully (None: the manager's
    # LEVIBOT_ENGINE_MAX_RSS_MB, off by default). Not a crash: the restart keeps its position.
    max_rss_mb: float | None = Field(default=None, gt=0, le=1_000_000)
    # Perpetual futures (Binance USDT-M: the symbol keeps its name, the ccxt market is BTC/USDT:USDT).
    # Shorts, leverage (applied last: caps and sizes are notional), funding every 8 h and isolated-margin
    # liquidation; a spot symbol is long-only.
    market: Literal["spot", "perpetual"] = "spot"
    leverage: float = Field(default=1.0, ge=1, le=125)
    margin_mode: Literal["isolated", "cross"] = "isolated"
    funding_rate: float | None = Field(default=None, ge=-0.05, le=0.05)  # per 8 h; None: funding_file or 0.01 %
    funding_file: str | None = None  # CSV timestamp,rate (the exchange's history; relative: to the config)
    liquidation_fee_bps: float = Field(default=50.0, ge=0, le=1000)  # charged on a liquidation's notional
    brackets: list[dict[str, float]] | None = None  # maintenance tiers (the exchange's fields); None: defaults
    # Refuse an entry whose liquidation price is closer than this many ATRs (0: only the stop-loss check).
    liquidation_buffer_atr: float = Field(default=3.0, ge=0, le=100)

    @model_validator(mode="after")
    def _perpetual_fields(self) -> SymbolConfig:
        if self.margin_mode == "cross":
            raise ValueError("margin_mode: cross margin is not supported yet; use isolated")
        if self.market == "spot":
            for name in ("funding_rate", "funding_file", "brackets"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: only for market: perpetual (this symbol trades spot)")
            if self.leverage != 1:
                raise ValueError("leverage: spot trades without leverage (set market: perpetual)")
        return self

    @property
    def perpetual(self) -> bool:
        return self.market == "perpetual"

    def usd_per_quote(self, symbol: str) -> float | None:
        """USD per unit of the quote currency: 1 for USD quotes, ``quote_usd`` for others (None: unknown)."""
        quote = quote_of(symbol)
        return 1.0 if quote is None or quote in USD_QUOTES else self.quote_usd

    def notional_caps(self, symbol: str) -> tuple[float, float]:
        """(entry size, position cap) in the quote currency of ``symbol``; ValueError naming the field."""
        quote = quote_of(symbol)
        if quote is None or quote in USD_QUOTES:
            return self.size_quote or self.size_usd, self.max_position_usd
        if self.quote_usd is None:
            if self.size_quote is None:
                raise ValueError(f"size_usd: {symbol} is quoted in {quote}, not USD; set size_quote (in {quote}) "
                                 f"or quote_usd (USD per {quote})")
            return self.size_quote, math.inf if "max_position_usd" not in self.model_fields_set \
                else self.max_position_usd  # an explicit cap is read in the quote currency
        return self.size_quote or self.size_usd / self.quote_usd, self.max_position_usd / self.quote_usd


class EngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: dict[str, Any] = Field(default_factory=dict)
    symbols: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("symbols", mode="before")
    @classmethod
    def _normalise_symbols(cls, v: object) -> object:
        """``btcusdt`` and ``BTC/USDT`` mean BTCUSDT, as on ``--symbols``."""
        if not isinstance(v, dict):
            return v
        out: dict[str, object] = {}
        for key, value in v.items():
            sym = str(key).strip().upper().replace("/", "")
            if sym in out:
                raise ValueError(f"{key}: duplicate symbol {sym}")
            out[sym] = value if value is not None else {}
        return out

    def for_symbol(self, symbol: str) -> SymbolConfig:
        mine = self.symbols.get(symbol, {})
        base = self.defaults
        strategy = mine.get("strategy") if isinstance(mine, dict) else None
        if isinstance(strategy, dict) and ({"name", "levilang"} & set(strategy)):
            base = {k: v for k, v in base.items() if k != "strategy"}  # another strategy: its own params only
        return SymbolConfig.model_validate(_deep_merge(base, mine))


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _fmt(err: ValidationError, prefix: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
    msg = str(first["msg"]).removeprefix("Value error, ")
    if re.match(r"^[a-z_]+: ", msg):  # a check across fields names its own field
        return f"{loc}.{msg}" if loc else msg
    return f"{loc}: {msg}"


# Checks a symbol's config beyond its fields (the trading floor supplies it: strategies, LeviLang files,
# shorts, funding files); ValueError("<field>: ...") names the field.
PrepareSymbol = Callable[["SymbolConfig", Path], "SymbolConfig"]


def load_engine_config(path: Path | None, symbols: list[str],
                       prepare: PrepareSymbol | None = None) -> dict[str, SymbolConfig]:
    """Read and validate the YAML for every symbol; UsageError names the bad field."""
    cfg, name = read_config_file(path)
    return _per_symbol(cfg, name, symbols, _base_dir(path), prepare)


def _base_dir(path: Path | None) -> Path:
    return path.resolve().parent if path is not None else Path.cwd()


def load_active(path: Path | None, cli_symbols: list[str] | None,
                prepare: PrepareSymbol | None = None) -> dict[str, SymbolConfig]:
    """The symbols to trade and their configs.

    The set comes from one place: ``--symbols`` when given (fixed for the manager's life),
    else the keys of the config's ``symbols:`` mapping (then a hot reload adds and removes
    engines). Either way a symbol with ``enabled: false`` is not traded.
    """
    cfg, name = read_config_file(path)
    if cli_symbols:
        candidates = cli_symbols
    else:
        candidates = list(cfg.symbols)
        for sym in candidates:
            if not SYMBOL_RE.match(sym):
                raise UsageError(f"{name}: symbols.{sym}: malformed symbol (expected letters/digits like BTCUSDT)")
        if not candidates:
            raise UsageError("--symbols: empty, and no --config with a symbols: section; expected e.g. BTCUSDT,ETHUSDT")
    configs = _per_symbol(cfg, name, candidates, _base_dir(path), prepare)
    return {s: c for s, c in configs.items() if c.enabled}


def read_config_file(path: Path | None) -> tuple[EngineConfig, str]:
    raw: Any = {}
    name = str(path) if path else "<defaults>"
    if path is not None:
        try:
            raw = yaml.safe_load(read_settled(path))
        except OSError as exc:
            raise UsageError(f"--config: cannot read {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise UsageError(f"--config: {path} is not valid YAML{where}") from exc
        if raw is None:  # an editor truncating before it writes, or a file with only comments
            raise UsageError(f"--config: {path} is empty")
        if not isinstance(raw, dict):
            raise UsageError(f"--config: {path}: top level must be a mapping")
    try:
        return EngineConfig.model_validate(raw), name
    except ValidationError as exc:
        raise UsageError(f"{name}: {_fmt(exc, '')}") from exc


def read_settled(path: Path, *, pause_s: float = 0.05, attempts: int = 20) -> str:
    """The file's text once two reads ``pause_s`` apart agree (a writer mid-save is waited out).

    Editors that truncate and then write in pieces are seen here as a changing file; after
    ``attempts`` disagreeing reads the file counts as unreadable (OSError).
    """
    text = path.read_text(encoding="utf-8")
    for _ in range(attempts):
        time.sleep(pause_s)
        again = path.read_text(encoding="utf-8")
        if again == text:
            return text
        text = again
    raise OSError(errno.EAGAIN, f"still changing after {attempts} reads")


def _per_symbol(cfg: EngineConfig, name: str, symbols: list[str], base_dir: Path,
                prepare: PrepareSymbol | None) -> dict[str, SymbolConfig]:
    try:
        SymbolConfig.model_validate(cfg.defaults)  # blame defaults for their own mistakes
    except ValidationError as exc:
        raise UsageError(f"{name}: {_fmt(exc, 'defaults')}") from exc
    out: dict[str, SymbolConfig] = {}
    for sym in symbols:
        where = f"symbols.{sym}" if sym in cfg.symbols else "defaults"
        try:
            one = cfg.for_symbol(sym)
        except ValidationError as exc:
            raise UsageError(f"{name}: {_fmt(exc, where)}") from exc
        try:
            one.notional_caps(sym)
            if prepare is not None:
                one = prepare(one, base_dir)
        except ValueError as exc:
            raise UsageError(f"{name}: {where}.{exc}") from exc
        out[sym] = one
    return out


def parse_symbols(value: str) -> list[str]:
    """``BTCUSDT,ETHUSDT`` -> list; rejects empty, malformed and duplicate entries."""
    if not value or not value.strip():
        raise UsageError("--symbols: empty; expected e.g. BTCUSDT,ETHUSDT")
    out: list[str] = []
    for part in value.split(","):
        sym = part.strip().upper().replace("/", "")
        if not sym:
            raise UsageError(f"--symbols: empty entry in {value!r}")
        if not SYMBOL_RE.match(sym):
            raise UsageError(f"--symbols: malformed symbol {part.strip()!r} (expected letters/digits like BTCUSDT)")
        if sym in out:
            raise UsageError(f"--symbols: duplicate symbol {sym}")
        out.append(sym)
    return out


@dataclass(frozen=True)
class SourceSpec:
    kind: Literal["synthetic", "replay", "live"]
    path: Path | None = None
    exchange: str | None = None  # live: ccxt exchange id
    market: str | None = None  # live: the exchange's unified symbol, e.g. BTC/USDT
    speed: float | None = None  # replay: simulated seconds per wall second (None: LEVIBOT_REPLAY_SPEED)

    def __str__(self) -> str:
        if self.kind == "live":
            return f"live:{self.exchange}"
        return self.kind if self.path is None else f"{self.kind}:{self.path}"

    @property
    def identity(self) -> str:
        """What a journal's prices came from: ``synthetic``, ``replay:<file name>``, ``live:<exchange>``."""
        if self.kind == "live":
            return f"live:{self.exchange}"
        return self.kind if self.path is None else f"{self.kind}:{self.path.name}"


def parse_source(value: str) -> SourceSpec:
    if value == "synthetic":
        return SourceSpec("synthetic")
    if value.startswith("live:"):
        exchange = value.removeprefix("live:").strip().lower()
        if not re.match(r"^[a-z0-9_]+$", exchange):
            raise UsageError("--source: live needs a ccxt exchange id, e.g. live:binance")
        return SourceSpec("live", exchange=exchange)
    if value.startswith("replay:"):
        raw = value.removeprefix("replay:")
        if not raw:
            raise UsageError("--source: replay needs a path, e.g. replay:data/BTCUSDT-5m.csv")
        return SourceSpec("replay", Path(raw).expanduser())
    raise UsageError(f"--source: unknown source {value!r} (expected synthetic, replay:PATH or live:EXCHANGE)")
