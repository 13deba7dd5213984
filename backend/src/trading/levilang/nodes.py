"""The compiled rule graph, evaluated one closed candle at a time.

Values are floats; conditions are 1.0 (true), 0.0 (false) or NaN (unknown: an input not warmed up,
a missing feature, a division by zero). ``and``/``or``/``not`` follow three-valued logic, and only a
definite 1.0 fires a rule, so NaN anywhere means "no signal", never an exception.

Indicators are talipp's incremental implementations (one ``add`` per bar; their history is
purged so an engine's memory stays flat). Each node lives in a timeframe context: the base
candles, or a higher timeframe resampled from them, whose nodes update only when one of its bars
has closed — a 1h value becomes visible on the base candle that closes the hour.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

from talipp.indicators import ATR, BB, EMA, MACD, RSI, SMA
from talipp.ohlcv import OHLCV

NAN = float("nan")
PURGE_EVERY = 512
SETTLE = 1e-9  # an infinite-memory indicator's warm-up: its seed's weight has decayed below this


def settle_bars(alpha: float) -> int:
    """Bars after which a recursive average with weight ``alpha`` has forgotten its seed to ``SETTLE``:
    an engine restarted with that much history computes what an uninterrupted run does (the look-ahead
    and warm-up check compares them)."""
    return math.ceil(math.log(SETTLE) / math.log(1 - alpha))


def memory_bars(kind: str, args: tuple[float, ...]) -> int:
    """Extra warm-up of the recursive indicators (EMA; Wilder's RSI and ATR; MACD's EMAs); 0 for windows."""
    n = int(args[0])
    if kind == "ema":
        return settle_bars(2 / (n + 1))
    if kind in ("rsi", "atr"):
        return settle_bars(1 / n) if n > 1 else 0
    if kind.startswith("macd"):
        return settle_bars(2 / (int(args[1]) + 1)) + settle_bars(2 / (int(args[2]) + 1))
    return 0


class Node:
    """One value per bar of its context (``tf_ms``; 0 = the base candles)."""

    kind = "node"

    def __init__(self, tf_ms: int, deps: tuple[Node, ...] = (), warmup: int = 0) -> None:
        self.tf_ms, self.deps = tf_ms, deps
        self.value = NAN
        self.hist: deque[float] | None = None
        self.warmup = warmup  # bars of its context before the first value

    def keep(self, n: int) -> None:
        if self.hist is None or (self.hist.maxlen or 0) < n + 1:
            self.hist = deque(self.hist or (), maxlen=n + 1)

    def step(self, bar: dict[str, float]) -> None:
        self.value = self.compute(bar)
        if self.hist is not None:
            self.hist.append(self.value)

    def compute(self, bar: dict[str, float]) -> float:
        raise NotImplementedError

    def tree(self) -> str:
        inner = ", ".join(d.tree() for d in self.deps)
        return f"{self.kind}({inner})"


class Const(Node):
    kind = "const"

    def __init__(self, v: float) -> None:
        super().__init__(0)
        self.value = v

    def step(self, bar: dict[str, float]) -> None:
        return None

    def tree(self) -> str:
        return repr(self.value)


class Field(Node):
    """OHLCV of the context's bar, a model output, a feed (sentiment, funding, on-chain), a position field."""

    kind = "field"

    def __init__(self, tf_ms: int, name: str) -> None:
        super().__init__(tf_ms)
        self.name = name

    def compute(self, bar: dict[str, float]) -> float:
        return float(bar.get(self.name, NAN))

    def tree(self) -> str:
        return self.name if not self.tf_ms else f"{self.name}@{self.tf_ms // 60_000}m"


class Lag(Node):
    kind = "lag"

    def __init__(self, tf_ms: int, x: Node, k: int) -> None:
        super().__init__(tf_ms, (x,), x.warmup + k)
        self.k = k
        x.keep(k)

    def compute(self, bar: dict[str, float]) -> float:
        h = self.deps[0].hist
        return h[-1 - self.k] if h is not None and len(h) > self.k else NAN

    def tree(self) -> str:
        return f"{self.deps[0].tree()}[{self.k}]"


def _div(a: float, b: float) -> float:
    return a / b if b else NAN


ARITH: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": _div,
}
COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


class Op(Node):
    """Arithmetic, comparison, boolean logic and the small math functions."""

    def __init__(self, tf_ms: int, kind: str, deps: tuple[Node, ...]) -> None:
        super().__init__(tf_ms, deps, max((d.warmup for d in deps), default=0))
        self.kind = kind

    def compute(self, bar: dict[str, float]) -> float:
        vals = [d.value for d in self.deps]
        k = self.kind
        if k == "and":
            return 0.0 if 0.0 in vals else (NAN if any(math.isnan(v) for v in vals) else 1.0)
        if k == "or":
            return 1.0 if 1.0 in vals else (NAN if any(math.isnan(v) for v in vals) else 0.0)
        if any(math.isnan(v) for v in vals):
            return NAN
        if k == "not":
            return 0.0 if vals[0] else 1.0
        if k == "neg":
            return -vals[0]
        if k in ARITH:
            out = ARITH[k](vals[0], vals[1])
            return out if math.isfinite(out) else NAN
        if k in COMPARE:
            return 1.0 if COMPARE[k](vals[0], vals[1]) else 0.0
        if k == "abs":
            return abs(vals[0])
        if k == "min":
            return min(vals)
        if k == "max":
            return max(vals)
        raise AssertionError(k)

    def tree(self) -> str:
        if self.kind in ARITH or self.kind in COMPARE or self.kind in ("and", "or"):
            return "(" + f" {self.kind} ".join(d.tree() for d in self.deps) + ")"
        return super().tree()


class Cross(Node):
    """``a crosses_above b``: a > b now and a <= b on the previous bar of this context."""

    def __init__(self, tf_ms: int, a: Node, b: Node, above: bool) -> None:
        super().__init__(tf_ms, (a, b), max(a.warmup, b.warmup) + 1)
        self.kind = "crosses_above" if above else "crosses_below"
        self.above = above
        self.prev = (NAN, NAN)

    def compute(self, bar: dict[str, float]) -> float:
        a, b = self.deps[0].value, self.deps[1].value
        pa, pb = self.prev
        self.prev = (a, b)
        if any(math.isnan(v) for v in (a, b, pa, pb)):
            return NAN
        now, before = (a > b, pa <= pb) if self.above else (a < b, pa >= pb)
        return 1.0 if now and before else 0.0


class Indicator(Node):
    """A talipp indicator over one input series (``atr`` reads the context's bar)."""

    def __init__(self, tf_ms: int, kind: str, x: Node | None, args: tuple[float, ...]) -> None:
        n = int(args[0])
        self.kind, self.args = kind, args
        extra = {"sma": n - 1, "ema": n - 1, "rsi": n, "atr": n - 1, "bb_upper": n - 1, "bb_lower": n - 1,
                 "bb_mid": n - 1, "highest": n - 1, "lowest": n - 1, "returns": n, "volatility": n,
                 "zscore": n - 1}.get(kind)
        if kind in ("macd", "macd_signal", "macd_hist"):
            extra = int(args[1]) + int(args[2]) - 2
        extra = max(int(extra or 0), memory_bars(kind, args))
        super().__init__(tf_ms, (x,) if x is not None else (), (x.warmup if x is not None else 0) + int(extra or 0))
        self.impl: Any = None
        self.window: deque[float] = deque(maxlen=n + 1)
        self.count = 0
        if kind == "sma":
            self.impl = SMA(n)
        elif kind == "ema":
            self.impl = EMA(n)
        elif kind == "rsi":
            self.impl = RSI(n)
        elif kind == "atr":
            self.impl = ATR(n)
        elif kind.startswith("bb_"):
            self.impl = BB(n, float(args[1]))
        elif kind.startswith("macd"):
            self.impl = MACD(int(args[0]), int(args[1]), int(args[2]))

    def compute(self, bar: dict[str, float]) -> float:
        k = self.kind
        if k == "atr":
            if any(math.isnan(bar.get(f, NAN)) for f in ("open", "high", "low", "close")):
                return NAN
            self.impl.add(OHLCV(bar["open"], bar["high"], bar["low"], bar["close"], bar.get("volume", 0.0)))
            return self._last()
        x = self.deps[0].value
        if math.isnan(x):
            return NAN  # an input still warming up is not fed (talipp takes numbers only)
        if self.impl is not None:
            self.impl.add(x)
            return self._last()
        return self._window(x)

    def _last(self) -> float:
        self.count += 1
        if self.count % PURGE_EVERY == 0 and len(self.impl) > PURGE_EVERY:
            self.impl.purge_oldest(len(self.impl) - PURGE_EVERY // 2)
        v = self.impl[-1]
        if v is None:
            return NAN
        k = self.kind
        if k.startswith("bb_"):
            return float({"bb_upper": v.ub, "bb_lower": v.lb, "bb_mid": v.cb}[k])
        if k.startswith("macd"):
            out = {"macd": v.macd, "macd_signal": v.signal, "macd_hist": v.histogram}[k]
            return NAN if out is None else float(out)
        return float(v)

    def _window(self, x: float) -> float:
        """Rolling statistics talipp has no incremental form of."""
        n = int(self.args[0])
        w = self.window
        w.append(x)
        if self.kind == "returns":
            return _div(x, w[0]) - 1 if len(w) == n + 1 else NAN
        if self.kind == "volatility":  # standard deviation of the last n log returns
            if len(w) < n + 1 or min(w) <= 0:
                return NAN
            r = [math.log(w[i + 1] / w[i]) for i in range(n)]
            m = sum(r) / n
            return math.sqrt(sum((v - m) ** 2 for v in r) / (n - 1)) if n > 1 else NAN
        last = list(w)[-n:]
        if len(last) < n:
            return NAN
        if self.kind == "highest":
            return max(last)
        if self.kind == "lowest":
            return min(last)
        m = sum(last) / n  # zscore
        sd = math.sqrt(sum((v - m) ** 2 for v in last) / n)
        return _div(x - m, sd)

    def tree(self) -> str:
        args = ", ".join(f"{a:g}" for a in self.args)
        inner = self.deps[0].tree() + ", " if self.deps else ""
        return f"{self.kind}({inner}{args})"


class Context:
    """The nodes of one timeframe and, for a higher one, the bar being built from base candles."""

    def __init__(self, tf_ms: int) -> None:
        self.tf_ms = tf_ms
        self.nodes: list[Node] = []
        self.bucket: int | None = None
        self.bar: dict[str, float] = {}

    def step(self, bar: dict[str, float]) -> None:
        for node in self.nodes:
            node.step(bar)

    def feed(self, ts: int, base_ms: int, candle: dict[str, float]) -> None:
        """Add one base candle; step this context when its bar closes (causal resampling)."""
        bucket = ts // self.tf_ms
        if self.bucket is not None and bucket != self.bucket:
            self.step(self.bar)  # a gap skipped this bar's last candle: it is closed all the same
            self.bucket = None
        if self.bucket is None:
            self.bucket, self.bar = bucket, dict(candle)
        else:
            b = self.bar
            b["high"], b["low"] = max(b["high"], candle["high"]), min(b["low"], candle["low"])
            b["close"], b["volume"] = candle["close"], b["volume"] + candle["volume"]
        if base_ms and (ts + base_ms) % self.tf_ms == 0:
            self.step(self.bar)
            self.bucket = None
