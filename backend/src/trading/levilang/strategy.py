"""A compiled LeviLang file as a ``Strategy``: the rule graph stepped on every closed candle.

Position facts (bars held, bars since the last exit, unrealised PnL, the target the position was
sized for) come from the journal through ``Strategy.position``, so they survive a restart; the
trailing stop's peak is the highest close seen while holding since the strategy was built (a short's:
the lowest). Shorts (``entry_short``/``exit_short``, perpetual symbols only) mirror the long rules: a
held side leaves on its exit rule or trailing stop, and when the other side's entry holds on that
same candle the position turns over (the trader closes, then opens).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

from backend.src.core.types import Candle, Signal
from backend.src.models.backends import ONNX, Backends
from backend.src.trading.levilang.compiler import FEEDS, MODEL
from backend.src.trading.levilang.spec import Compiled
from backend.src.trading.strategies.base import Strategy
from backend.src.trading.strategies.ensemble import ModelWatcher

log = logging.getLogger(__name__)
FEED_KEYS = {"news_score": "sentiment"}


class LeviStrategy(Strategy):
    name = "levilang"

    def __init__(self, compiled: Compiled, *, models_root: Path | None = None,
                 extras: Callable[[], dict[str, float]] | None = None, backends: Backends = ONNX) -> None:
        self.c = compiled
        self.warmup_candles = compiled.warmup_candles
        self.fingerprint = compiled.source_hash
        self.stop_loss_pct, self.take_profit_pct = compiled.stop_loss_pct, compiled.take_profit_pct
        self.allow_short = compiled.entry_short is not None
        self.extras = extras if set(FEEDS) & compiled.graph.uses else None  # no Redis read for unused feeds
        uses_model = bool(set(MODEL) & compiled.graph.uses) or compiled.sizing[0] == "kelly"
        self.model = ModelWatcher(10, 30, models_root, extras, backends) \
            if uses_model and models_root is not None else None
        if self.model is not None:  # the model's features may need a longer history than the rules
            self.warmup_candles = max(self.warmup_candles, self.model.warmup_candles)
        self.base_ms = compiled.graph.base_ms
        self.prev_ts: int | None = None
        self.peak = 0.0
        self.warned = False
        self.higher = [c for tf, c in sorted(compiled.graph.contexts.items()) if tf]
        self.base = compiled.graph.contexts.get(0)

    @property
    def trading_as(self) -> str:
        return Path(self.c.path).name

    def indicators(self) -> dict[str, float]:
        """The file's named indicators after the last candle (NaN while warming up)."""
        return {k: float(n.value) for k, n in self.c.indicators.items()}

    def warmup(self, candles: list[Candle]) -> None:
        if self.model is not None:
            self.model.warmup(candles)
        for c in candles:
            self._step(c, {})

    def _bar(self, candle: Candle) -> dict[str, float]:
        bar = {"open": candle.open, "high": candle.high, "low": candle.low, "close": candle.close,
               "volume": candle.volume}
        if self.model is not None:
            sig = self.model.on_candle(candle)
            self.model_version = self.model.version or ""
            if sig is not None and self.model.version is not None:
                bar["prob_up"], bar["confidence"] = sig.prob_up, sig.confidence
        for k, v in (self.extras() if self.extras is not None else {}).items():
            bar[FEED_KEYS.get(k, k)] = float(v)
        p = self.position
        side = 1.0 if p.qty > 0 else -1.0 if p.qty < 0 else 0.0
        bar.update(bars_held=float(p.bars_held), bars_since_exit=float(p.bars_since_exit),
                   unrealized_pct=p.unrealized_pct, in_position=abs(side), in_long=float(side > 0),
                   in_short=float(side < 0), side=side)
        return bar

    def _step(self, candle: Candle, bar: dict[str, float]) -> None:
        bar = bar or {"open": candle.open, "high": candle.high, "low": candle.low, "close": candle.close,
                      "volume": candle.volume}
        step = candle.ts - self.prev_ts if self.prev_ts is not None else 0
        self.prev_ts = candle.ts
        if self.base_ms is not None and step and step % self.base_ms and not self.warned:  # a gap is no mismatch
            log.error("%s: candles are %d s apart, the strategy is written for %d s candles; its higher "
                      "timeframes will be misaligned", self.c.name, step // 1000, self.base_ms // 1000)
            self.warned = True
        for ctx in self.higher:  # a higher bar that closes with this candle is visible on it
            ctx.feed(candle.ts, self.base_ms or step, bar)
        if self.base is not None:
            self.base.step(bar)

    def on_candle(self, candle: Candle) -> Signal | None:
        bar = self._bar(candle)
        self._step(candle, bar)
        c, p = self.c, self.position
        prob, conf = bar.get("prob_up", 0.5), bar.get("confidence", 0.0)
        if p.qty:
            long = p.qty > 0
            self.peak = max(self.peak or p.avg_price, candle.close) if long else min(self.peak or p.avg_price,
                                                                                   candle.close)
            trail_pct = c.trailing_stop_pct
            trail = trail_pct is not None and (candle.close <= self.peak * (1 - trail_pct / 100) if long
                                               else candle.close >= self.peak * (1 + trail_pct / 100))
            rule = c.exit if long else c.exit_short
            if (trail or (rule is not None and rule.value == 1.0)) and p.bars_held >= c.min_hold_bars:
                other = c.entry_short if long else c.entry
                if other is not None and other.value == 1.0 and not trail:  # turn over on this candle
                    target = self._target(bar, long=not long)
                    if target:
                        self.peak = 0.0
                        return Signal(target, prob, conf, f"levi {c.name} reverse", notional=self._notional())
                return Signal(0.0, prob, conf, f"levi {c.name} {'trailing stop' if trail else 'exit'}")
            held = p.target or (1.0 if long else -1.0)
            return Signal(held, prob, conf, f"levi {c.name} hold", notional=self._notional())
        self.peak = 0.0
        if p.bars_since_exit < c.cooldown_bars:
            return Signal(0.0, prob, conf, f"levi {c.name} flat")
        for rule, long in ((c.entry, True), (c.entry_short, False)):
            if rule is not None and rule.value == 1.0:
                target = self._target(bar, long=long)
                if target:
                    return Signal(target, prob, conf, f"levi {c.name} {'entry' if long else 'entry_short'}",
                                  notional=self._notional())
                return Signal(0.0, prob, conf, f"levi {c.name} no edge")
        return Signal(0.0, prob, conf, f"levi {c.name} flat")

    def _target(self, bar: dict[str, float], *, long: bool) -> float:
        """Signed target of an entry: the sizing's fraction (Kelly: of the chance of the side taken)."""
        method, amount = self.c.sizing
        side = 1.0 if long else -1.0
        if method == "kelly":
            p = bar.get("prob_up", math.nan)
            edge = (2 * p - 1) * side
            return 0.0 if math.isnan(p) else side * round(max(0.0, min(1.0, edge * amount)), 6)
        return side * (amount if method == "fixed_fraction" else 1.0)

    def _notional(self) -> float | None:
        method, amount = self.c.sizing
        return amount if method == "fixed_quote" else None
