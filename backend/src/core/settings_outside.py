"""The outside world's settings (part of ``Settings``): signals in, notifications out, the parity drift alert."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator

from backend.src.core.signals import parse_sources
from backend.src.core.webhooks import parse_webhooks


class OutsideSettings(BaseModel):
    # POST /signals/{symbol} (core/signals.py): name=kind:secret,... (kinds hmac, tradingview); unset: off
    signal_secrets: SecretStr | None = None
    signal_max_age_s: float = Field(default=60.0, gt=0, le=3600)  # a signal's ts this far from now: 409
    signal_rate_per_min: int = Field(default=600, ge=1, le=1_000_000)  # per source; over it: 429
    # Notification webhooks (supervisor/notify.py): kind:url,... with kinds json and discord (a secret)
    notify_webhooks: SecretStr | None = None
    notify_events: str = ("fill,stop,crashed,failed,recovered,restarted,stalled,global_stop,config_rejected,"
                          "parity_drift,retrain_failed,model_rejected,model_promoted")
    # The parity job (backend/ml/research/parity.py): an unexplained live-vs-backtest drift of at least this
    # share of the symbol's equity (%) is alerted (0: never); the manager has every engine checked this often
    parity_drift_pct: float = Field(default=0.5, ge=0, le=100)
    parity_every_s: float = Field(default=3600.0, ge=0)  # 0: only on request

    @field_validator("signal_secrets", "notify_webhooks")
    @classmethod
    def _parsed(cls, v: SecretStr | None, info: object) -> SecretStr | None:
        """Checked once, here (one line naming the entry, never the secret)."""
        if v is not None:
            (parse_sources if getattr(info, "field_name", "") == "signal_secrets" else parse_webhooks)(
                v.get_secret_value())
        return v
