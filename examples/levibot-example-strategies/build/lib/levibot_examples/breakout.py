"""An event-driven long/short strategy with its own indicator: a price channel breakout.

The channel is the highest high and lowest low of the ``lookback`` candles *before* this one
(computed here, candle by candle). A close above the channel's top goes long, below its bottom goes
short (``allow_short``, perpetual symbols); a held position leaves when the close crosses the
channel's middle back against it.
"""

from __future__ import annotations

from collections import deque

from pydantic import BaseModel, ConfigDict, Field

from backend.src.trading.api import Candle, Signal, Strategy


class Channel:
    """Highest high and lowest low over the last ``n`` candles (the indicator this plugin brings)."""

    def __init__(self, n: int) -> None:
        self.highs: deque[float] = deque(maxlen=n)
        self.lows: deque[float] = deque(maxlen=n)

    @property
    def ready(self) -> bool:
        return len(self.highs) == self.highs.maxlen

    @property
    def upper(self) -> float:
        return max(self.highs)

    @property
    def lower(self) -> float:
        return min(self.lows)

    def add(self, c: Candle) -> None:
        self.highs.append(c.high)
        self.lows.append(c.low)


class BreakoutParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback: int = Field(default=48, ge=2, le=5000)  # candles in the channel
    size: float = Field(default=1.0, gt=0, le=1)  # the exposure of a position (of the symbol's maximum)
    allow_short: bool = False  # short on a downside break (perpetual symbols only)


class ChannelBreakout(Strategy):
    name = "channel_breakout"
    Params = BreakoutParams

    def __init__(self, lookback: int = 48, size: float = 1.0, allow_short: bool = False) -> None:
        self.size, self.allow_short = size, allow_short
        self.channel = Channel(lookback)
        self.warmup_candles = lookback + 1
        self.values: dict[str, float] = {}

    def on_candle(self, candle: Candle) -> Signal | None:
        ch = self.channel
        if not ch.ready:
            ch.add(candle)
            return None
        upper, lower = ch.upper, ch.lower
        mid = (upper + lower) / 2
        self.values = {"upper": upper, "lower": lower, "mid": mid}
        ch.add(candle)  # the channel of the next candle includes this one
        held = self.position.qty
        if candle.close > upper:
            return Signal(self.size, 0.5, 0.0, "breakout up")
        if candle.close < lower and self.allow_short:
            return Signal(-self.size, 0.5, 0.0, "breakout down")
        if (held > 0 and candle.close < mid) or (held < 0 and candle.close > mid):
            return Signal(0.0, 0.5, 0.0, "back through the middle")
        return Signal(self.position.target if held else 0.0, 0.5, 0.0, "hold" if held else "flat")

    def indicators(self) -> dict[str, float]:
        return dict(self.values)
