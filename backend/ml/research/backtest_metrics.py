"""Trading and prediction metrics of a backtest (Sharpe, deflated Sharpe, Sortino, drawdown, trades,
accuracy, AUC, Brier) and the equity/drawdown chart."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd


def sharpe(r: np.ndarray, per_year: float) -> float:
    sd = r.std(ddof=1)
    return float(r.mean() / sd * math.sqrt(per_year)) if sd > 0 else 0.0


def deflated_sharpe_prob(r: np.ndarray, n_trials: int, trial_sr_var: float | None = None) -> float:
    """P(true Sharpe > the best of ``n_trials`` unskilled ones) (Bailey & López de Prado), per-bar units."""
    n = len(r)
    sd = r.std(ddof=1)
    if n < 3 or sd == 0:
        return 0.0
    sr = r.mean() / sd
    var = trial_sr_var if trial_sr_var is not None else 1.0 / n
    g = 0.5772156649
    norm = NormalDist()  # the standard library's: no SciPy in the runtime install
    sr0 = math.sqrt(var) * ((1 - g) * norm.inv_cdf(1 - 1 / max(n_trials, 2))
                           + g * norm.inv_cdf(1 - 1 / (max(n_trials, 2) * math.e))) if n_trials > 1 else 0.0
    d = r - r.mean()
    m2 = float(np.mean(d**2))
    skew, kurt = float(np.mean(d**3)) / m2**1.5, float(np.mean(d**4)) / m2**2  # population moments (Pearson)
    denom = math.sqrt(max(1e-12, 1 - skew * sr + (kurt - 1) / 4 * sr * sr))
    return float(norm.cdf((sr - sr0) * math.sqrt(n - 1) / denom))


def position_changes(held: np.ndarray) -> float:
    """How many times the held state changed (an entry and an exit are two), from flat at the start."""
    return float(np.abs(np.diff(np.concatenate([[0.0], held]))).sum())


def trading_metrics(ret: pd.Series, signal: np.ndarray, per_year: float, n_trials: int = 1) -> dict[str, float]:
    r = ret.to_numpy()
    equity = np.cumprod(1 + r)
    dd = equity / np.maximum.accumulate(equity) - 1
    downside = r[r < 0]
    trades, cur = [], 0.0
    for x, s in zip(r, signal, strict=True):
        if s:
            cur = (1 + cur) * (1 + x) - 1
        elif cur:
            trades.append(cur)
            cur = 0.0
    if cur:
        trades.append(cur)
    wins = [t for t in trades if t > 0]
    losses = [t for t in trades if t <= 0]
    years = len(r) / per_year
    total = float(equity[-1] - 1) if len(equity) else 0.0
    return {
        "total_return": total,
        "cagr": float((1 + total) ** (1 / years) - 1) if years > 0 and total > -1 else -1.0 if years > 0 else 0.0,
        "max_drawdown_days": drawdown_days(equity, per_year / 365),
        "sharpe": sharpe(r, per_year),
        "deflated_sharpe_prob": deflated_sharpe_prob(r, n_trials),
        "sortino": float(r.mean() / downside.std(ddof=1) * math.sqrt(per_year)) if len(downside) > 1 else 0.0,
        "max_drawdown": float(-dd.min()) if len(dd) else 0.0,
        "trades": float(len(trades)),
        "win_rate": len(wins) / len(trades) if trades else 0.0,
        "profit_factor": profit_factor(wins, losses),
        "position_changes": position_changes(signal),
        "exposure": float(np.mean(signal)) if len(signal) else 0.0,
    }


def drawdown_days(equity: np.ndarray, bars_per_day: float) -> float:
    """The longest time spent below a previous peak (days, the last one counted even if still open)."""
    below = equity < np.maximum.accumulate(equity) if len(equity) else np.zeros(0, dtype=bool)
    longest = run = 0
    for b in below:
        run = run + 1 if b else 0
        longest = max(longest, run)
    return float(longest / bars_per_day) if bars_per_day else 0.0


def calendar_report(ret: pd.Series, per_year: float) -> dict[str, Any]:
    """Per calendar year (net return, Sharpe, max drawdown) and the net return of every month."""
    when = pd.to_datetime(ret.index, unit="ms", utc=True)
    out: dict[str, Any] = {"years": {}, "months": {}}
    for year, part in ret.groupby(when.year):
        r = part.to_numpy()
        eq = np.cumprod(1 + r)
        out["years"][str(year)] = {"total_return": float(eq[-1] - 1), "sharpe": sharpe(r, per_year),
                                   "max_drawdown": float(-(eq / np.maximum.accumulate(eq) - 1).min())}
    for month, part in ret.groupby(when.strftime("%Y-%m")):
        out["months"][str(month)] = float(np.prod(1 + part.to_numpy()) - 1)
    return out


def cost_report(metrics: dict[str, float], ret: pd.Series, paid: float, bars_per_day: float) -> dict[str, Any]:
    """What trading cost and how often it traded, beside ``trading_metrics`` of the same run: fees +
    slippage paid (share of the starting equity), the return before them, position changes per
    day, and the net return of each day-long fold."""
    days = len(ret) / bars_per_day
    per_day = int(round(bars_per_day))
    r = ret.to_numpy()
    daily = [float(np.prod(1 + r[i:i + per_day]) - 1) for i in range(0, len(r), per_day)]
    return {"cost_paid": paid, "gross_return": metrics["total_return"] + paid,
            "turnover_per_day": metrics["position_changes"] / days if days else 0.0, "fold_returns": daily}


def profit_factor(wins: list[float], losses: list[float]) -> float:
    loss = -sum(losses)
    if loss > 0:
        return float(sum(wins) / loss)
    return float("inf") if wins else 0.0


def prediction_metrics(prob: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    ok = ~np.isnan(y)
    p, t = prob[ok], y[ok]
    conf = (p >= threshold) | (p <= 1 - threshold)
    top = np.abs(p - 0.5) >= np.quantile(np.abs(p - 0.5), 0.8) if len(t) else np.zeros(0, dtype=bool)
    out = {"bars": float(len(t)), "accuracy": float(((p > 0.5) == t).mean()) if len(t) else 0.0,
           "selective_accuracy_top20": float(((p[top] > 0.5) == t[top]).mean()) if top.any() else float("nan"),
           "coverage_top20": float(top.mean()) if len(t) else 0.0,
           "majority_rate": float(max(t.mean(), 1 - t.mean())) if len(t) else 0.0,
           "selective_accuracy": float(((p[conf] > 0.5) == t[conf]).mean()) if conf.any() else float("nan"),
           "coverage": float(conf.mean()) if len(t) else 0.0,
           "brier": float(np.mean((p - t) ** 2)) if len(t) else 0.0}
    out["auc"] = float(roc_auc_score(t, p)) if len(np.unique(t)) == 2 else float("nan")
    return out


def mean_over_pairs(reports: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = ("accuracy", "majority_rate", "selective_accuracy", "coverage", "selective_accuracy_top20",
            "coverage_top20", "auc", "brier", "sharpe", "deflated_sharpe_prob", "sortino", "max_drawdown",
            "max_drawdown_days", "total_return", "cagr", "gross_return", "cost_paid", "exposure",
            "position_changes", "turnover_per_day", "turnover_per_year", "win_rate")
    out: dict[str, dict[str, float]] = {}
    for rep in reports.values():
        for name, m in rep["strategies"].items():
            for k in keys:
                if k in m and np.isfinite(m[k]):
                    out.setdefault(name, {}).setdefault(k, 0.0)
                    out[name][k] += m[k] / len(reports)
    return out


def plot(curves: dict[str, pd.Series], title: str, path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=[3, 1])
    for name, r in curves.items():
        eq = (1 + r).cumprod()
        x = pd.to_datetime(r.index, unit="ms")
        ax1.plot(x, eq, label=name, linewidth=1)
        ax2.plot(x, eq / eq.cummax() - 1, linewidth=1)
    ax1.set_title(title)
    ax1.legend(fontsize=8)
    ax1.set_ylabel("equity")
    ax2.set_ylabel("drawdown")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
