"""``python -m backend.src.trading.check STRATEGY --ohlcv FILE``: does a strategy peek into the future, and
is its warm-up long enough?

STRATEGY: a built-in name, an installed plugin's name, a ``*.levi.yaml`` file or ``package.module:Class``.

The strategy runs over the whole file the way the backtester runs it (``precompute`` on the whole run,
then candle by candle): the reference. Then
- **look-ahead**: the same over prefixes of the file (cut at ``cuts`` points): every decision and every
  exposed value up to a cut must be what the whole file gave. One that changes when later candles are
  added read them (a ``shift(-1)``, a centred window, a column normalised by its whole-file mean).
- **warm-up**: a fresh strategy restarted at ``restarts`` points the way an engine restarts (warmed on
  the ``warmup_candles`` before the point, then candle by candle, no ``precompute``): every decision and
  every exposed indicator value (``Strategy.indicators``) for ``span`` candles after the point must be
  what the uninterrupted run gave. A value that depends on more history than the warm-up gives it
  (an EMA seeded too late, a cumulative sum) means ``warmup_candles`` is too short.
Every finding names the candle, the value and both readings. Exit 0: nothing found; 1: findings; 2: bad
input (one line naming it). Engines and the backtester run ``check_strategy`` on a plugin before trading
it unless its config says ``check: false``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backend.src.core.cli import OneLineParser
from backend.src.core.errors import EXIT_USAGE
from backend.src.core.settings import cli_path
from backend.src.core.types import Candle
from backend.src.market.candles import load_candles
from backend.src.trading.factory import build_strategy, from_argument
from backend.src.trading.strategies.base import Strategy

CHECK_WINDOW = 2000  # the candles a backtest checks a plugin on (its file's last ones)
Reading = tuple[float | None, dict[str, float]]  # the decision's target (None: no signal) and the indicators
MAX_SHOWN = 10


@dataclass(frozen=True)
class Finding:
    kind: str  # "look-ahead" | "warm-up"
    index: int
    ts: int
    value: str  # "target" or an indicator's name
    reference: float | None
    other: float | None
    context: str  # what the other reading was

    def line(self) -> str:
        when = dt.datetime.fromtimestamp(self.ts / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (f"{self.kind}: candle {when} (#{self.index}, ts {self.ts}): {self.value} = {_fmt(self.reference)} "
                f"over the whole file, {_fmt(self.other)} {self.context}")


@dataclass
class Report:
    candles: int
    warmup: int
    findings: list[Finding] = field(default_factory=list)
    compared: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def lines(self) -> list[str]:
        out = []
        for kind in ("look-ahead", "warm-up"):
            mine = [f for f in self.findings if f.kind == kind]
            out += [f.line() for f in mine[:MAX_SHOWN]]
            if len(mine) > MAX_SHOWN:
                out.append(f"{kind}: ... and {len(mine) - MAX_SHOWN} more")
        if any(f.kind == "warm-up" for f in self.findings):
            out.append(f"warm-up: warmup_candles is {self.warmup}; a value above needs more history than that")
        return out

    def refusal(self, spec: str) -> str:
        """One line: why a plugin is not traded (engines and the backtester)."""
        return (f"strategy.python: {spec}: {self.summary()}; first: {self.lines()[0]} (python -m "
                "backend.src.trading.check shows them all; check: false in the config trades it unchecked)")

    def summary(self) -> str:
        if self.ok:
            return (f"OK: no look-ahead and a long-enough warm-up ({self.warmup} candles) over {self.candles} candles "
                    f"({self.compared} readings compared)")
        kinds = sorted({f.kind for f in self.findings})
        return f"FOUND {len(self.findings)} difference(s): {', '.join(kinds)}"


def _fmt(v: float | None) -> str:
    return "no signal" if v is None else f"{v:.10g}"


def _same(a: float | None, b: float | None, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(abs(a), abs(b), 1.0)


def _step(s: Strategy, c: Candle) -> Reading:
    sig = s.on_candle(c)
    return (None if sig is None else float(sig.target)), s.indicators()


def run_whole(make: Callable[[], Strategy], candles: Sequence[Candle]) -> list[Reading]:
    """The backtester's way: the whole run handed over first, then candle by candle."""
    s = make()
    s.precompute(list(candles))
    return [_step(s, c) for c in candles]


def _points(lo: int, hi: int, n: int) -> list[int]:
    if hi <= lo:
        return []
    return sorted({lo + (hi - lo) * k // max(n - 1, 1) for k in range(n)} if n > 1 else {hi})


def check_strategy(make: Callable[[], Strategy], candles: Sequence[Candle], *, cuts: int = 12, restarts: int = 8,
                   span: int | None = None, tolerance: float = 1e-6) -> Report:
    """Findings of both kinds (see the module's docstring); ``make`` builds a fresh strategy."""
    warm = max(0, int(make().warmup_candles))
    ref = run_whole(make, candles)
    rep = Report(len(candles), warm)
    n = len(candles)
    for k in _points(min(n, warm + 2), n - 1, cuts):  # prefixes candles[:k]
        part = run_whole(make, candles[:k])
        for i in range(k):
            rep.compared += 1
            bad = [("target", ref[i][0], part[i][0])] if not _same(ref[i][0], part[i][0], 1e-9) else []
            bad += [(name, v, part[i][1].get(name)) for name, v in ref[i][1].items()
                    if not _same(v, part[i][1].get(name), tolerance)]
            if bad:
                name, a, b = bad[0]
                rep.findings.append(Finding("look-ahead", i, candles[i].ts, name, a, b,
                                            f"with the file cut after candle #{k - 1}"))
                break
    span = span or max(1, min(warm, 200))
    for j in _points(warm, n - span, restarts):  # an engine restarted at candle j
        s = make()
        s.warmup(list(candles[j - warm:j]))
        for i in range(j, min(n, j + span)):
            target, ind = _step(s, candles[i])
            rep.compared += 1
            bad = [("target", ref[i][0], target)] if not _same(ref[i][0], target, 1e-9) else []
            bad += [(k, v, ind.get(k)) for k, v in ref[i][1].items() if not _same(v, ind.get(k), tolerance)]
            if bad:
                name, a, b = bad[0]
                rep.findings.append(Finding("warm-up", i, candles[i].ts, name, a, b,
                                            f"after a restart at candle #{j} warmed on {warm} candles"))
                break
    return rep


def maker(arg: str, params: dict[str, object], models_root: Path | None = None) -> Callable[[], Strategy]:
    """A fresh-strategy factory for a STRATEGY argument (ValueError naming what is wrong)."""
    cfg = from_argument(arg, params)
    build_strategy(cfg, models_root)  # fails here, once, rather than in every run
    return lambda: build_strategy(cfg, models_root)


def count(text: str) -> int:
    n = int(text)
    if n < 0:
        raise ValueError(text)
    return n


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="check", description="Look-ahead and warm-up checks of a strategy over a candle file.")
    ap.add_argument("strategy", help="a built-in or installed name, a *.levi.yaml file or package.module:Class")
    ap.add_argument("--ohlcv", type=cli_path, required=True, help="a candle file (CSV or Parquet)")
    ap.add_argument("--params", default="{}", help="the strategy's parameters as JSON (built-ins and plugins)")
    ap.add_argument("--last", type=count, default=3000, help="check the file's last N candles (default 3000; 0: all)")
    ap.add_argument("--cuts", type=count, default=12, help="prefixes compared for look-ahead")
    ap.add_argument("--restarts", type=count, default=8, help="restarts compared for the warm-up")
    ap.add_argument("--tolerance", type=float, default=1e-6, help="relative tolerance of indicator values")
    args = ap.parse_args(argv)
    try:
        params = json.loads(args.params)
        if not isinstance(params, dict):
            raise ValueError("--params: a JSON object, like '{\"lookback\": 20}'")
        if not args.ohlcv.is_file():
            raise ValueError(f"--ohlcv: {args.ohlcv}: no such file")
        candles, _ = load_candles(args.ohlcv)
        candles = candles[-args.last:] if args.last > 0 else candles
        make = maker(args.strategy, params)
        warm = make().warmup_candles
        if len(candles) < 2 * warm + 10:
            raise ValueError(f"--ohlcv: {len(candles)} candles; the check needs at least {2 * warm + 10} "
                             f"(twice the warm-up of {warm}, and some)")
    except (ValueError, OSError) as exc:
        print(f"check: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = check_strategy(make, candles, cuts=args.cuts, restarts=args.restarts, tolerance=args.tolerance)
    except Exception as exc:  # noqa: BLE001 - the strategy's own bug: one line, not a traceback
        print(f"check: error: {args.strategy} raised {type(exc).__name__}: {str(exc)[:300]} while being run",
              file=sys.stderr)
        return EXIT_USAGE
    for line in report.lines():
        print(line)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
