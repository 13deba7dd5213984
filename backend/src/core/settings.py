"""Typed settings (env prefix ``LEVIBOT_``), built once per entry point and passed down."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from backend.src.core.settings_outside import OutsideSettings
from backend.src.core.settings_redis import RedisSettings

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DATA_DIR = REPO_ROOT / "backend" / "data"


class StorageSettings(BaseModel):
    """Where journals, logs, models, the embedded Redis and the registry file live."""

    data_dir: Path = DEFAULT_DATA_DIR
    log_retention_days: int = Field(default=30, ge=1)
    log_level: str = "INFO"

    @field_validator("data_dir")
    @classmethod
    def _data_dir_absolute(cls, v: Path) -> Path:
        return cli_path(str(v))

    @property
    def journal_dir(self) -> Path:
        return self.data_dir / "journal"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "engine_registry.json"


class SupervisorSettings(BaseModel):
    """Liveness and the restart policy."""

    heartbeat_interval_s: float = Field(default=0.25, gt=0, le=1.0)
    heartbeat_timeout_s: float = Field(default=5.0, gt=0)
    lease_ttl_s: float = Field(default=10.0, gt=0)
    start_timeout_s: float = Field(default=20.0, gt=0)
    health_sweep_s: float = Field(default=30.0, gt=0)
    stop_timeout_s: float = Field(default=10.0, gt=0)
    max_restarts: int = Field(default=5, ge=1)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_cap_s: float = Field(default=30.0, ge=0)
    backoff_jitter: float = Field(default=0.2, ge=0, le=1)
    stable_after_s: float = Field(default=60.0, gt=0)
    max_concurrent_starts: int = Field(default=4, ge=1)
    # An engine whose resident memory grows above this is restarted gracefully (None: off; an engine
    # config's max_rss_mb overrides it per symbol).
    engine_max_rss_mb: float | None = Field(default=None, gt=0, le=1_000_000)
    # Engines one manager may run: more symbols are refused at start and on reload (exit 2).
    max_engines: int = Field(default_factory=lambda: default_max_engines(), ge=1)

    @model_validator(mode="after")
    def _timeouts_consistent(self) -> Self:
        if self.heartbeat_timeout_s <= 2 * self.heartbeat_interval_s:
            raise ValueError("heartbeat_timeout_s must exceed twice heartbeat_interval_s")
        if self.lease_ttl_s <= 2 * self.heartbeat_interval_s:
            raise ValueError("lease_ttl_s must exceed twice heartbeat_interval_s")
        return self


class EngineSettings(BaseModel):
    """Market-data pacing and the portfolio risk policy every engine applies."""

    replay_speed: float = Field(default=300.0, gt=0)  # simulated seconds per wall second
    synthetic_interval_s: float = Field(default=1.0, gt=0)  # wall seconds per synthetic candle
    history_len: int = Field(default=2000, ge=10, le=100_000)  # candles and fills kept in Redis for the dashboard
    risk_policy: Path = REPO_ROOT / "backend" / "risk" / "policy.yaml"
    # what runs a loaded model: ONNX Runtime, or the training stack (torch / LightGBM itself)
    tft_backend: Literal["onnx", "torch"] = "onnx"
    gbdt_backend: Literal["onnx", "native"] = "onnx"

    @field_validator("risk_policy")
    @classmethod
    def _risk_policy_absolute(cls, v: Path) -> Path:
        return cli_path(str(v))


class ApiSettings(BaseModel):
    """The API (started by the manager unless --no-api) and the control-endpoint token."""

    api_enabled: bool = True
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_token: SecretStr | None = None
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024**3)  # larger: 413 before it is read
    api_body_timeout_s: float = Field(default=10.0, gt=0, le=600)  # a body sent slower than this: 408
    command_max_age_s: float = Field(default=300.0, gt=0)
    api_cache_s: float = Field(default=0.1, ge=0)  # /engines/status body shared for this long


class AlertSettings(BaseModel):
    """Telegram and Slack (secrets from the environment only; never logged), and the Telegram bot."""

    telegram_bot_token: SecretStr | None = None
    # Chats the bot answers and alerts go to: one id or a comma-separated list (groups are negative).
    telegram_chat_id: str | None = None
    # User ids allowed to control (restart, stop, promote, ...), comma-separated; none: nobody.
    telegram_admins: str | None = None
    telegram_api_base: str = "https://api.telegram.org"
    bot_enabled: bool = True  # the manager starts the bot when a token is set (--no-bot: not)
    telegram_poll_timeout_s: float = Field(default=25.0, gt=0, le=50)  # getUpdates long poll
    telegram_confirm_s: float = Field(default=60.0, gt=0, le=3600)  # a confirm button's life
    # Webhook instead of long polling: the public HTTPS URL Telegram posts to (your TLS proxy forwards
    # it to the listener below)
    telegram_webhook_url: str | None = Field(default=None, pattern=r"^https://[^\s/]+(/\S*)?$")
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = Field(default=8443, ge=1, le=65535)
    slack_webhook_url: SecretStr | None = None
    alert_window_s: float = Field(default=60.0, gt=0)
    alert_timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("telegram_chat_id", "telegram_admins")
    @classmethod
    def _id_list(cls, v: str | None) -> str | None:
        if v is None:
            return None
        ids = [x.strip() for x in v.split(",") if x.strip()]
        bad = [x for x in ids if not x.lstrip("-").isdigit()]
        if not ids or bad:
            raise ValueError(f"expected numeric Telegram ids, comma-separated (got {', '.join(bad) or 'none'})")
        return ",".join(ids)

    @property
    def telegram_chats(self) -> list[int]:
        return [int(x) for x in (self.telegram_chat_id or "").split(",") if x]

    @property
    def telegram_admin_ids(self) -> list[int]:
        return [int(x) for x in (self.telegram_admins or "").split(",") if x]


class AnalyticsSettings(BaseModel):
    """The analytics store (fills, orders, events, candles, equity, predictions in ClickHouse): embedded
    chDB under ``<data dir>/clickhouse/`` unless ``clickhouse_url`` names a real server."""

    clickhouse_url: SecretStr | None = None  # http://user:password@host:8123/?database=levibot (the shipper writes)
    # The same server as a read-only user (profile readonly=1), for the API, the bot and the CLI's queries;
    # unset: they use clickhouse_url, with readonly=2 on every statement (reads and session settings only).
    clickhouse_read_url: SecretStr | None = None
    analytics_enabled: bool = True  # the manager starts the analytics process (--no-analytics: not)
    analytics_interval_s: float = Field(default=0.5, gt=0, le=60)  # shipping cycle
    analytics_port: int = Field(default=0, ge=0, le=65535)  # the embedded store's HTTP port (0: any free)

    @field_validator("clickhouse_url", "clickhouse_read_url")
    @classmethod
    def _clickhouse_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return None
        parts = urlsplit(v.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected http(s)://[user:password@]host:port/[?database=name] (ClickHouse's HTTP port)")
        db = parse_qs(parts.query).get("database", ["default"])[0]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", db):
            raise ValueError("the database must be a plain name (letters, digits, _)")
        return v


class ExchangeSettings(BaseModel):
    """Live market data through ccxt; the base URL points every API of the exchange at another
    host (a testnet, a proxy, a local stand-in). Real orders only with --live AND both keys."""

    exchange_base_url: str | None = None
    exchange_timeout_s: float = Field(default=10.0, gt=0)
    live_poll_delay_s: float = Field(default=1.0, ge=0)  # after a candle closes, before asking for it
    live_trading: bool = False
    exchange_api_key: SecretStr | None = None
    exchange_secret: SecretStr | None = None


def comma_list(value: object) -> object:
    """A list setting from the environment: ``A,B,C`` (as the CLI takes it) or a JSON list."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError("expected A,B,C or a JSON list like [\"A\", \"B\"]") from None
    return [x.strip() for x in text.split(",") if x.strip()]


class FeatureSettings(BaseModel):
    """AI features on RQ workers (queues "sentiment" and "onchain"). 0 workers: none started here."""

    workers: int = Field(default=2, ge=0, le=64)
    job_timeout_s: int = Field(default=120, ge=1)
    worker_alive_ttl_s: float = Field(default=3.0, gt=0)  # a worker silent this long is dead; its job requeued
    # Sentiment: backend lexicon (offline) | gemma (Google AI Studio) | openai (self-hosted, compatible).
    sentiment_backend: Literal["lexicon", "gemma", "openai"] = "lexicon"
    gemma_api_key: SecretStr | None = None
    gemma_model: str = "gemma-3-27b-it"
    gemma_base_url: str = "https://generativelanguage.googleapis.com"
    gemma_rpm: float = Field(default=30.0, gt=0)  # free tier: about 30 requests per minute
    openai_base_url: str = "http://127.0.0.1:8001/v1"
    openai_api_key: SecretStr | None = None
    openai_model: str = "gemma-3-27b-it"
    openai_rpm: float = Field(default=600.0, gt=0)
    llm_timeout_s: float = Field(default=30.0, gt=0)
    llm_batch: int = Field(default=100, ge=1, le=100)
    sentiment_cache_ttl_s: int = Field(default=3600, ge=1)
    # News input: RSS/Atom feed URLs (A,B,C or a JSON list in the environment) and/or a JSONL file.
    news_feeds: Annotated[list[str], NoDecode] = Field(default_factory=list)
    news_jsonl: Path | None = None
    news_interval_s: float = Field(default=300.0, gt=0)
    _news_feeds = field_validator("news_feeds", mode="before")(comma_list)
    news_window_s: float = Field(default=6 * 3600.0, gt=0)
    news_half_life_s: float = Field(default=3600.0, gt=0)
    # On-chain: Dune (saved query id, or the project's exchange-flow SQL when unset) + funding via ccxt.
    dune_api_key: SecretStr | None = None
    dune_base_url: str = "https://api.dune.com"
    dune_query_id: int | None = Field(default=None, ge=1)
    dune_poll_s: float = Field(default=2.0, gt=0)
    dune_max_wait_s: float = Field(default=120.0, gt=0)
    # Nansen (issue 20): smart-money, exchange and whale net flows per token (Token God Mode flow intelligence).
    nansen_api_key: SecretStr | None = None
    nansen_base_url: str = "https://api.nansen.ai"
    nansen_timeframe: Literal["5m", "1h", "6h", "12h", "1d", "7d"] = "1d"
    nansen_timeout_s: float = Field(default=20.0, gt=0)
    # base asset -> "chain:token address" (JSON object in the environment); the majors are built in
    nansen_tokens: dict[str, str] = Field(default_factory=dict)
    funding_exchange: str | None = None  # ccxt id for funding rates (e.g. binance); unset: no funding fetch
    onchain_interval_s: float = Field(default=300.0, gt=0)
    onchain_cache_ttl_s: float = Field(default=300.0, gt=0)

    @field_validator("nansen_tokens")
    @classmethod
    def _nansen_tokens(cls, v: dict[str, str]) -> dict[str, str]:
        for asset, where in v.items():
            chain, _, address = where.partition(":")
            if not asset.isalnum() or not chain.isalpha() or len(address) < 20 or not address.isalnum():
                raise ValueError(f"{asset}: expected \"chain:token address\" (e.g. \"ethereum:0x2260fac5...\"), "
                                 f"got {where!r}")
        return {asset.upper(): where for asset, where in v.items()}

    @field_validator("news_jsonl")
    @classmethod
    def _news_jsonl_absolute(cls, v: Path | None) -> Path | None:
        return None if v is None else cli_path(str(v))


class RetrainSettings(BaseModel):
    """Nightly retrain (backend/scripts/nightly_retrain.sh)."""

    engine_config: Path | None = None  # the manager's --config: its symbols are retrained
    # used when there is no engine_config; BTCUSDT,ETHUSDT like --symbols (or a JSON list)
    retrain_symbols: Annotated[list[str], NoDecode] = Field(default_factory=list)
    retrain_source: str = "live:binance"  # where the data collector gets the last day (or replay:DIR)
    _retrain_symbols = field_validator("retrain_symbols", mode="before")(comma_list)
    retrain_trials: int = Field(default=50, ge=1)
    retrain_days: int = Field(default=30, ge=2)
    retrain_sharpe_tolerance: float = Field(default=0.5, ge=0)
    retrain_drawdown_tolerance: float = Field(default=0.02, ge=0)
    retrain_timeframe: Literal["5m", "15m", "1h", "4h"] = "5m"  # the candles collected and trained on
    # The candidate must beat the best baseline (buy-and-hold, SMA crossover, time-series momentum, flat) on its
    # window by this many Sharpe units, and its deflated Sharpe (every configuration the tuner tried counted)
    # must be at least the second figure: the probability its Sharpe is above the best of as many unskilled tries.
    retrain_beat_baselines: bool = True
    retrain_baseline_margin: float = Field(default=0.1, ge=0)
    retrain_min_deflated_sharpe: float = Field(default=0.5, ge=0, le=1)

    @field_validator("engine_config")
    @classmethod
    def _engine_config_absolute(cls, v: Path | None) -> Path | None:
        return None if v is None else cli_path(str(v))


Section = TypeVar("Section", bound=BaseModel)


class Settings(BaseSettings, RedisSettings, StorageSettings, SupervisorSettings, EngineSettings, ApiSettings,
               AlertSettings, OutsideSettings, AnalyticsSettings, ExchangeSettings, FeatureSettings, RetrainSettings):
    """Every setting, one ``LEVIBOT_<FIELD>`` environment surface, built once per entry point and
    passed down. Each concern is its own model (the classes above: their fields, defaults,
    ranges and validators); ``settings.redis``, ``settings.supervisor`` and ``settings.retrain``
    give a component only its own section. Relative paths are read against the directory the
    command started in."""

    model_config = SettingsConfigDict(env_prefix="LEVIBOT_", extra="ignore", frozen=True)

    def section(self, cls: type[Section]) -> Section:
        return cls.model_validate({name: getattr(self, name) for name in cls.model_fields})

    @property
    def redis(self) -> RedisSettings:
        return self.section(RedisSettings)

    @property
    def supervisor(self) -> SupervisorSettings:
        return self.section(SupervisorSettings)

    @property
    def retrain(self) -> RetrainSettings:
        return self.section(RetrainSettings)

    def child_env(self, secrets: frozenset[str] = frozenset()) -> dict[str, str]:
        """Environment that rebuilds these settings in a child process (api, workers).

        Secrets (every ``SecretStr`` field) are included only when named in ``secrets``: each
        kind of child gets the ones it uses and no other (see ``children.py``).
        """
        out = {}
        for name, value in self.model_dump().items():
            if value is None or name == "live_trading" or (isinstance(value, SecretStr) and name not in secrets):
                continue
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            if isinstance(raw, list):
                out[f"LEVIBOT_{name.upper()}"] = json.dumps(raw)
                continue
            out[f"LEVIBOT_{name.upper()}"] = str(raw).lower() if isinstance(raw, bool) else str(raw)
        return out


ENGINES_PER_CORE = 25
MIB_PER_ENGINE = 128


def default_max_engines() -> int:
    """25 engines per CPU core, and no more than one per 128 MiB of RAM (an engine uses ~10 MB USS
    without a model, bench_recovery; the rest is headroom for the ML model and the machine's other work)."""
    import psutil  # noqa: PLC0415 - only when the default is needed

    cores = psutil.cpu_count() or 1
    return max(1, min(ENGINES_PER_CORE * cores, psutil.virtual_memory().total // (MIB_PER_ENGINE * 2**20)))


def max_engines_rule() -> str:
    return f"{ENGINES_PER_CORE} per CPU core, at most 1 per {MIB_PER_ENGINE} MiB of RAM"


ENGINE_SECRETS = frozenset({"exchange_api_key", "exchange_secret"})


def without_secrets(s: Settings, keep: frozenset[str] = frozenset()) -> Settings:
    """A copy holding only the secrets in ``keep`` (the rest set to None)."""
    drop = {name: None for name, value in s.model_dump().items() if isinstance(value, SecretStr) and name not in keep}
    return s.model_copy(update=drop)


def secret_env_names(s: Settings) -> list[str]:
    """``LEVIBOT_<FIELD>`` of every secret setting (scrubbed from the manager's own environment)."""
    return [f"LEVIBOT_{name.upper()}" for name, info in type(s).model_fields.items()
            if "SecretStr" in str(info.annotation)]


def secret_values(s: Settings) -> list[str]:
    """Every secret's value (for the log redaction filter)."""
    return [v.get_secret_value() for v in s.model_dump().values() if isinstance(v, SecretStr) and v.get_secret_value()]


def cli_path(value: str) -> Path:
    """argparse ``type`` for path options: absolute against the current directory, once, at parse
    time (children and subprocesses run elsewhere, so a relative path would change meaning)."""
    return Path(value).expanduser().resolve()


def cli_settings(data_dir: Path | None) -> Settings:
    """Settings for a command-line tool: the environment, with ``--data-dir`` on top when given."""
    return Settings(**({"data_dir": data_dir} if data_dir else {}))  # type: ignore[arg-type]
