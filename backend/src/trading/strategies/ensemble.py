"""The ensemble as an engine strategy: candles → features → ``prob_up`` / ``confidence`` → Signal.

Engines use it when the registry has a production model (``<data dir>/models/current``,
checksums verified before anything is loaded) and fall back to the SMA crossover otherwise
or when the model cannot be loaded. Heavy imports (LightGBM, torch, pytorch-forecasting) are
paid once in the forkserver, which preloads them when a production model exists; an engine
start only reads the small artifact files.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.src.core.types import Candle, Signal
from backend.src.models.backends import ONNX, Backends
from backend.src.trading.strategies.base import Strategy, fingerprint
from backend.src.trading.strategies.baselines import SmaCrossover, SmaParams
from backend.src.trading.strategies.decision import DecisionParams, DecisionRule, Forecast

log = logging.getLogger(__name__)
# What an engine needs to run a production model: the TFT and the LightGBM boosters run through ONNX Runtime
# (``ml/models/tft.py``, ``ml/models/trees.py``), so no torch, lightning, pytorch-forecasting, LightGBM or SciPy
# in the forkserver or any engine.
ML_PRELOAD = ["backend.src.models.ensemble_predictor", "backend.src.models.feature_pipeline",
              "backend.src.models.registry", "onnxruntime"]


def ml_preload(backends: Backends) -> list[str]:
    """``ML_PRELOAD``, plus the training stack where the settings ask models to run in it
    (``LEVIBOT_TFT_BACKEND=torch``, ``LEVIBOT_GBDT_BACKEND=native``): imported once, not per engine."""
    return [*ML_PRELOAD, *backends.preload()]

ENCODER = 48
WINDOW = 1000  # candles kept: 15 closed 4h bars (the 4h RSI, 720 5m candles) plus the TFT encoder, with margin
HOURLY_WINDOW = 2800  # over hourly candles: 16 weekly bars (the 1w RSI, 2688 candles) with margin
BASE_WINDOW = 200  # enough for a model on the base timeframe's features only (longest window 48 + encoder 48)
LONG_PREFIXES = ("tf", "zret_", "mkt_", "rel_")  # higher-timeframe, normalised and cross-pair features


def window_for(model: Any) -> int:
    """Candles a model's features need: the full window only when it reads the higher timeframes."""
    names = {f for m in getattr(model, "models", {}).values() for f in getattr(m, "features", [])}
    if any(n.startswith("tf1w_") for n in names):
        return HOURLY_WINDOW
    return WINDOW if any(n.startswith(LONG_PREFIXES) for n in names) else BASE_WINDOW


def encoder_of(model: Any) -> int:
    """Feature rows a forecast reads: the TFT's encoder where the model has one (else the last row is enough)."""
    params = [getattr(m, "params", {}) for m in getattr(model, "models", {}).values()]
    return max([ENCODER, *(int(p["encoder"]) for p in params if isinstance(p, dict) and "encoder" in p)])


def production_model(models_root: Path, backends: Backends = ONNX) -> tuple[str, Any] | None:
    """(version, EnsemblePredictor) of the verified production model, or None."""
    if not (models_root / "current").is_symlink():
        return None  # no model promoted: an engine (re)start does not import the ML stack for nothing
    from backend.src.models.ensemble_predictor import EnsemblePredictor  # noqa: PLC0415
    from backend.src.models.registry import Registry  # noqa: PLC0415

    reg = Registry(models_root)
    version = reg.current()
    if version is None:
        return None
    directory = reg.verify(version)  # never unpickle what does not match its sha256
    return version, EnsemblePredictor.load(directory, backends)


Extras = Callable[[], dict[str, float]]
NO_OPINION = Forecast(math.nan)


def decision_of(config: Any) -> DecisionParams:
    """The decision parameters an ensemble config carries (older models: the threshold alone)."""
    return DecisionParams(threshold=float(config.threshold), exit_threshold=float(config.exit_threshold),
                          min_hold=int(config.min_hold), edge=float(config.edge),
                          vol_target=float(getattr(config, "vol_target", 0.0)),
                          kelly_cap=float(getattr(config, "kelly_cap", 0.0)))


def decision_fingerprint(version: str, params: DecisionParams) -> str:
    # the keys stay as they were hashed before the rename: a fingerprint changes only with the strategy
    keys = {"model": version, "threshold": float(params.threshold), "exit": float(params.exit_threshold),
            "min_hold": params.min_hold, "edge": float(params.edge)}
    if params.sized:
        keys |= {"vol_target": params.vol_target, "kelly_cap": params.kelly_cap, "size_step": params.size_step}
    return fingerprint("ensemble", keys)


def opinion(prob_up: float, weight_share: float) -> float:
    """The ensemble's P(up) as the decision rule reads it: NaN (no opinion) when no model answered,
    not the neutral 0.5 the predictor reports then — an entry threshold of 0.5 must not trade it."""
    return prob_up if weight_share > 0 else math.nan


def decide(strategy: Strategy, rule: DecisionRule, version: str, f: Forecast, conf: float,
           horizon: int = 1) -> Signal:
    shorts = strategy.shorts and strategy.allow_short
    target = rule(f, f.exp_return, strategy.position, strategy.round_trip_cost, shorts=shorts,
                  carry=strategy.funding_per_bar * horizon)
    return Signal(target, f.prob if math.isfinite(f.prob) else 0.5, conf,
                  f"ensemble {version} p={f.prob:.3f} c={conf:.3f} e={f.exp_return:.4f}")


def forecast_of(row: Any) -> Forecast:
    """A predictor's row (``EnsemblePredictor.predict``) as the decision layer reads it."""
    return Forecast(opinion(float(row["prob_up"]), float(row["weight_share"])), float(row["exp_return"]),
                    float(row.get("sigma", math.nan)), float(row.get("vol", math.nan)))


class PrecomputedEnsemble(Strategy):
    """The decision rule over predictions computed beforehand (a walk-forward's per-fold models):
    ``table`` maps a candle's ts to (forecast, confidence). Research only: engines trade
    ``ModelWatcher``, the strategy a config names ``ensemble``."""

    name = "ensemble_precomputed"

    def __init__(self, table: dict[int, tuple[Forecast, float]], decision: DecisionParams,
                 version: str = "walk-forward") -> None:
        self.table, self.rule = table, DecisionRule(decision)
        self.model_version = version
        self.fingerprint = decision_fingerprint(version, decision)

    def on_candle(self, candle: Candle) -> Signal | None:
        f, conf = self.table.get(candle.ts, (NO_OPINION, 0.0))
        return decide(self, self.rule, self.model_version, f, conf)


class EnsembleStrategy(Strategy):
    """The production model's forecast per candle, traded by the ``DecisionRule``."""

    def __init__(self, model: Any, version: str, fallback: SmaCrossover, extras: Extras | None = None) -> None:
        self.extras = extras
        self.model = model
        self.version = self.model_version = version
        decision = decision_of(model.config)
        self.rule = DecisionRule(decision)
        self.fingerprint = decision_fingerprint(version, decision)
        self.fallback = fallback
        self.warmup_candles = window_for(model)
        self.encoder = encoder_of(model)
        from backend.src.models.tail_features import Window  # noqa: PLC0415 - a model is loaded: numpy is too

        self.candles = Window(self.warmup_candles)

    def warmup(self, candles: list[Candle]) -> None:
        for c in candles[-self.warmup_candles:]:
            self.candles.append(c)
        self.fallback.warmup(candles)

    def on_candle(self, candle: Candle) -> Signal | None:
        from backend.src.models.tail_features import build_tail  # noqa: PLC0415

        self.candles.append(candle)
        fb = self.fallback.on_candle(candle)  # kept warm, in case the model has to be dropped
        if len(self.candles) < 100:
            return None
        # the TFT's encoder; the others use the last row
        feats = build_tail(self.candles.frame(), self.encoder, multi_timeframe=self.warmup_candles > BASE_WINDOW)
        for name, value in (self.extras() if self.extras is not None else {}).items():
            feats[name] = float("nan")
            feats.loc[feats.index[-1], name] = value
        try:
            row = self.model.predict(feats, last=True).iloc[-1]
        except Exception:  # a broken model must not stop trading: the SMA takes over  # noqa: BLE001
            log.exception("ensemble %s failed on a candle; using the SMA fallback", self.version)
            return fb
        return decide(self, self.rule, self.version, forecast_of(row), float(row["confidence"]),
                      int(getattr(self.model.config, "horizon", 1)))


class ModelWatcher(Strategy):
    """Trades whatever ``models/current`` points at, re-checked before every candle (a
    ``readlink``): a newly promoted model takes over within one candle period, warmed with
    the candles already seen; one that fails to load is logged and skipped, and the model
    in use (or the SMA) keeps trading."""

    name = "ensemble"
    Params = SmaParams  # the fallback's

    def __init__(self, fast: int, slow: int, models_root: Path, extras: Extras | None = None,
                 backends: Backends = ONNX, allow_short: bool = False) -> None:
        self.fallback = SmaCrossover(fast, slow, allow_short)
        self.allow_short = allow_short
        self.backends = backends
        self.active: Strategy = self.fallback
        self.fingerprint = self.fallback.fingerprint
        self.models_root = models_root
        self.extras = extras
        self.version: str | None = None
        self.skipped: str | None = None
        self.history: deque[Candle] = deque(maxlen=HOURLY_WINDOW)
        self.warmup_candles = BASE_WINDOW
        self.reload()

    def reload(self) -> None:
        link = self.models_root / "current"
        try:
            target = str(link.readlink()) if link.is_symlink() else None
        except OSError:
            target = None
        if target is None or target in (self.version, self.skipped):
            return
        try:
            loaded = production_model(self.models_root, self.backends)
        except Exception as exc:  # noqa: BLE001 - corrupted/tampered/unloadable: keep what we have
            log.error("model %s not usable (%s); staying on %s", target, exc, self.version or "the SMA crossover")
            self.skipped = target
            return
        if loaded is None:
            return
        version, model = loaded
        new = EnsembleStrategy(model, version, self.fallback, self.extras)
        new.candles.extend(self.history)
        log.info("trading on ensemble %s%s", version, f" (was {self.version})" if self.version else "")
        self.active, self.version, self.skipped = new, version, None
        self.fingerprint, self.model_version = new.fingerprint, version
        self.warmup_candles = max(BASE_WINDOW, new.warmup_candles)  # what a restart replays

    @property
    def trading_as(self) -> str:
        if self.version is not None:
            return f"ensemble {self.version}"
        return f"{self.fallback.name} (ensemble fallback: no usable production model)"

    def warmup(self, candles: list[Candle]) -> None:
        self.history.extend(candles[-HOURLY_WINDOW:])
        self.fallback.warmup(candles)
        if isinstance(self.active, EnsembleStrategy):
            self.active.candles.extend(candles[-self.active.warmup_candles:])

    def on_candle(self, candle: Candle) -> Signal | None:
        self.reload()
        self.history.append(candle)
        self.active.position, self.active.round_trip_cost = self.position, self.round_trip_cost
        self.active.shorts, self.active.funding_per_bar = self.shorts, self.funding_per_bar
        self.active.allow_short = self.allow_short
        return self.active.on_candle(candle)


def build_ml_strategy(fast: int, slow: int, models_root: Path | None, extras: Extras | None = None,
                      backends: Backends = ONNX, allow_short: bool = False) -> Strategy:
    if models_root is None:
        return SmaCrossover(fast, slow, allow_short)
    return ModelWatcher(fast, slow, models_root, extras, backends, allow_short)
