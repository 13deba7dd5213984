"""Perpetual futures terms: maintenance-margin brackets, the isolated liquidation price, funding.

- **Brackets** (Binance USDT-M "leverage and margin tiers"): a position's notional picks a tier with a
  maintenance margin rate (MMR), a maintenance amount (``cum``) and the highest leverage allowed. The
  defaults in ``usdm_brackets.yaml`` are a snapshot of Binance's published tiers, in the fields of its
  ``GET /fapi/v1/leverageBracket``; live engines read the exchange's own, and a config may override them.
- **Liquidation price**, isolated margin, one-way mode (Binance's formula for one position):
  ``LP = (WB + cum − s·Q·EP) / (Q·MMR − s·Q)`` with ``s`` = +1 long / −1 short, ``Q`` the size, ``EP`` the
  entry price, ``WB`` the position's isolated margin.
- **Funding**: every 8 h (00:00, 08:00, 16:00 UTC) a long pays ``qty × mark × rate`` to the shorts (a
  negative rate reverses it). The rates come from a CSV ``timestamp,rate`` (the exchange's history) or a
  configured constant; a series with a gap, a NaN or no rate for a funding time is refused, never guessed.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from backend.src.core.config import SymbolConfig

FUNDING_INTERVAL_MS = 8 * 3_600_000
BASELINE_FUNDING = 0.0001  # Binance's interest component per 8 h: the rate when the premium is zero
BRACKETS_FILE = Path(__file__).with_name("usdm_brackets.yaml")


@dataclass(frozen=True)
class Bracket:
    floor: float  # notional from (USDT)
    cap: float  # notional up to
    max_leverage: float
    mmr: float  # maintenance margin rate
    cum: float  # maintenance amount: makes the margin continuous across tiers


class Brackets:
    def __init__(self, tiers: list[Bracket]) -> None:
        if not tiers:
            raise ValueError("brackets: at least one tier")
        self.tiers = sorted(tiers, key=lambda t: t.floor)

    @staticmethod
    def from_rows(rows: list[dict[str, Any]], where: str = "brackets") -> Brackets:
        """Tiers in the exchange's fields (notionalFloor, notionalCap, initialLeverage, maintMarginRatio[, cum]);
        a missing ``cum`` is derived so the maintenance margin is continuous at every floor."""
        tiers: list[Bracket] = []
        cum = 0.0
        for i, row in enumerate(sorted(rows, key=lambda r: float(r["notionalFloor"]))):
            try:
                floor, cap = float(row["notionalFloor"]), float(row["notionalCap"])
                lev, mmr = float(row["initialLeverage"]), float(row["maintMarginRatio"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{where}[{i}]: needs notionalFloor, notionalCap, initialLeverage, "
                                 f"maintMarginRatio ({exc})") from exc
            if not (0 <= floor < cap and lev >= 1 and 0 < mmr < 1):
                raise ValueError(f"{where}[{i}]: need 0 <= notionalFloor < notionalCap, initialLeverage >= 1, "
                                 f"0 < maintMarginRatio < 1")
            if tiers:
                cum += floor * (mmr - tiers[-1].mmr)
            tiers.append(Bracket(floor, cap, lev, mmr, float(row.get("cum", round(cum, 8)))))
        return Brackets(tiers)

    @staticmethod
    def default(symbol: str) -> Brackets:
        data = yaml.safe_load(BRACKETS_FILE.read_text(encoding="utf-8"))
        rows = data.get(symbol) or data["DEFAULT"]
        return Brackets.from_rows(rows, f"{BRACKETS_FILE.name}:{symbol}")

    def tier(self, notional: float) -> Bracket:
        for t in self.tiers:
            if notional <= t.cap:
                return t
        return self.tiers[-1]

    def max_leverage(self, notional: float) -> float:
        return self.tier(notional).max_leverage


def liquidation_price(qty: float, entry: float, margin: float, brackets: Brackets) -> float:
    """Isolated-margin liquidation price of a signed position (0 for a long that cannot be liquidated)."""
    if not qty or entry <= 0:
        return 0.0
    q, s = abs(qty), (1.0 if qty > 0 else -1.0)
    t = brackets.tier(q * entry)
    price = (margin + t.cum - s * q * entry) / (q * t.mmr - s * q)
    for _ in range(3):  # the tier is the one of the notional at the liquidation price
        t2 = brackets.tier(q * max(price, 0.0))
        if t2 == t:
            break
        t = t2
        price = (margin + t.cum - s * q * entry) / (q * t.mmr - s * q)
    return max(price, 0.0)


def is_funding_time(ts_ms: int) -> bool:
    return ts_ms % FUNDING_INTERVAL_MS == 0


class FundingRates:
    """The funding rate at each funding time: a series (CSV) or one constant."""

    def __init__(self, constant: float | None = None, series: dict[int, float] | None = None,
                 source: str = "") -> None:
        self.constant, self.series = constant, series or {}
        self.times = sorted(self.series)
        self.source = source or (f"constant {constant:.4%} per 8h" if constant is not None else "none")

    def rate(self, ts_ms: int) -> float:
        """The rate at funding time ``ts_ms``; ValueError when the series does not hold it."""
        if not self.series:
            if self.constant is None:
                raise ValueError("funding: no rate configured (funding_rate or funding_file)")
            return self.constant
        rate = self.series.get(ts_ms)
        if rate is None:
            raise ValueError(f"{self.source}: no funding rate for {_iso(ts_ms)} "
                             f"(the series covers {_iso(self.times[0])} .. {_iso(self.times[-1])})")
        return rate

    def covers(self, start_ms: int, end_ms: int) -> str | None:
        """None when every funding time in [start, end] has a rate, else a line saying what is missing."""
        if not self.series:
            return None
        first = -(-start_ms // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
        if first <= end_ms and (first < self.times[0] or end_ms >= self.times[-1] + FUNDING_INTERVAL_MS):
            return (f"{self.source}: covers {_iso(self.times[0])} .. {_iso(self.times[-1])}, "
                    f"the candles {_iso(start_ms)} .. {_iso(end_ms)}")
        return None

    def near(self, ts_ms: int) -> float:
        """The latest rate at or before ``ts_ms`` (for a forecast of what holding costs)."""
        if not self.series:
            return self.constant or 0.0
        i = bisect_right(self.times, ts_ms)
        return self.series[self.times[max(i - 1, 0)]]


def funding_rates(cfg: SymbolConfig) -> FundingRates:
    """What a perpetual symbol pays in paper and backtests: ``funding_file``, else ``funding_rate``, else the
    baseline (ValueError naming ``funding_file``)."""
    if cfg.funding_file:
        return read_funding_csv(Path(cfg.funding_file))
    if cfg.funding_rate is not None:
        return FundingRates(cfg.funding_rate, source="funding_rate")
    return FundingRates(BASELINE_FUNDING, source=f"constant {BASELINE_FUNDING:.2%} per 8h (the baseline)")


def funding_beside(cfg: SymbolConfig, candles: Path | None, symbol: str) -> SymbolConfig:
    """A perpetual symbol with no funding configured takes the exchange's history saved beside its candle
    file (``<SYMBOL>-funding.csv``, as ``download_data --market perpetual`` writes it), when there is one;
    the file is read whole (ValueError naming ``funding_file``)."""
    if not cfg.perpetual or cfg.funding_file or cfg.funding_rate is not None or candles is None:
        return cfg
    prefix = candles.name.split("-")[0]
    for name in (f"{symbol}-funding.csv", f"{prefix}-funding.csv"):
        path = candles.parent / name
        if path.is_file():
            found = cfg.model_copy(update={"funding_file": str(path.resolve())})
            funding_rates(found)
            return found
    return cfg


def read_funding_csv(path: Path, field: str = "funding_file") -> FundingRates:
    """``timestamp,rate`` rows (ms or s; the exchange's few-ms lag is rounded to the funding time); a
    missing or malformed file, a NaN, a time off the 8 h grid or a gap is a ValueError naming the row."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ValueError(f"{field}: cannot read {path}: {exc.strerror}") from exc
    series: dict[int, float] = {}
    prev: int | None = None
    for n, row in enumerate(rows, start=2):
        try:
            raw_ts, rate = float(row["timestamp"]), float(row["rate"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{field}: {path.name} line {n}: needs numeric timestamp,rate columns") from exc
        if not math.isfinite(rate) or not math.isfinite(raw_ts) or abs(rate) > 0.05:
            raise ValueError(f"{field}: {path.name} line {n}: rate {row['rate']!r} is not a funding rate")
        ts = int(raw_ts * 1000) if raw_ts < 1e11 else int(raw_ts)
        ts = round(ts / 60_000) * 60_000  # Binance stamps funding a few ms after the hour
        if not is_funding_time(ts):
            raise ValueError(f"{field}: {path.name} line {n}: {_iso(ts)} is not a funding time (00/08/16 UTC)")
        if prev is not None and ts - prev != FUNDING_INTERVAL_MS:
            raise ValueError(f"{field}: {path.name} line {n}: gap or disorder after {_iso(prev)} (next {_iso(ts)})")
        series[ts], prev = rate, ts
    if not series:
        raise ValueError(f"{field}: {path.name} holds no rates")
    return FundingRates(series=series, source=f"{field} {path.name}")


def _iso(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
