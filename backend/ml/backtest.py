"""Walk-forward backtest of the ensemble beside simple baselines, after fees and slippage.

``python -m backend.ml.backtest --ohlcv-dir DIR [--holdout 0.25] [--out DIR]``: for every
5m file, the final ``holdout`` share of the series is the test region; it is cut into
day-long folds, and before each fold the models are trained on the past only (rolling
window), with the last ``horizon`` bars before the fold purged (their labels would peek
into it). A signal computed at a bar's close is filled at the next bar's open; fees and
slippage are the paper broker's (taker fee + slippage in bps, on every position change);
position size comes from the risk manager's fixed-fractional sizing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from backend.ml.feature_pipeline import build, infer_timeframe_ms, label_up, load_ohlcv
from backend.ml.models.base import Model, Precomputed
from backend.ml.models.ensemble_predictor import FEATURE_SETS, EnsembleConfig, EnsemblePredictor
from backend.ml.models.tft import TFTModel
from backend.risk.manager import RiskManager
from backend.risk.policy import load_policy
from backend.src.core.errors import EXIT_USAGE, UsageError
from backend.src.core.settings import REPO_ROOT, Settings, cli_path

log = logging.getLogger(__name__)
DEFAULT_CONFIG = REPO_ROOT / "backend" / "ml" / "ensemble.yaml"


@dataclass(frozen=True)
class Costs:
    fee_bps: float = 10.0  # the paper broker's default taker fee
    slippage_bps: float = 5.0


@dataclass(frozen=True)
class WalkForward:
    train_bars: int = 2880  # 10 days of 5m
    test_bars: int = 288  # one day
    horizon: int = 12  # label: close 12 bars (1 h) later above this close

    def folds(self, start: int, end: int) -> list[tuple[slice, slice]]:
        out = []
        t = start
        while t < end:
            train_end = t - self.horizon  # purge: these labels look into the test fold
            out.append((slice(max(0, train_end - self.train_bars), train_end), slice(t, min(end, t + self.test_bars))))
            t += self.test_bars
        return out


def risk_sizes(feats: pd.DataFrame, risk: RiskManager, horizon: int) -> np.ndarray:
    """Position size per bar as a fraction of equity: the risk manager's sizing against the
    move ATR suggests over the holding horizon (0 where ATR is not known yet)."""
    atr = feats["atr_14"].to_numpy()
    return np.array([risk.calculate_position_size("sizing", 10_000.0, float(a) * math.sqrt(horizon)) / 10_000.0
                     if np.isfinite(a) and a > 0 else 0.0 for a in atr])


def positions(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Long when P(up) ≥ threshold, held while it stays ≥ 0.5, flat otherwise (long-only spot)."""
    pos = np.zeros(len(prob))
    held = 0.0
    for i, p in enumerate(prob):
        if np.isnan(p):
            held = 0.0
        elif p >= threshold:
            held = 1.0
        elif p < 0.5:
            held = 0.0
        pos[i] = held
    return pos


def simulate(df: pd.DataFrame, signal: np.ndarray, size: np.ndarray, costs: Costs) -> pd.Series:
    """Per-bar strategy returns: the signal at bar t's close is filled at bar t+1's open and held
    until bar t+2's open; every change of exposure pays fee + slippage."""
    opens = df["open"].to_numpy()
    nxt = np.append(opens[1:], np.nan)
    nxt2 = np.append(opens[2:], [np.nan, np.nan])
    exposure = signal * size
    gross = exposure * (nxt2 / nxt - 1)
    turnover = np.abs(np.diff(np.concatenate([[0.0], exposure])))
    net = gross - turnover * (costs.fee_bps + costs.slippage_bps) / 1e4
    return pd.Series(np.nan_to_num(net), index=df.index)


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
    sr0 = math.sqrt(var) * ((1 - g) * stats.norm.ppf(1 - 1 / max(n_trials, 2))
                           + g * stats.norm.ppf(1 - 1 / (max(n_trials, 2) * math.e))) if n_trials > 1 else 0.0
    skew, kurt = float(stats.skew(r)), float(stats.kurtosis(r, fisher=False))
    denom = math.sqrt(max(1e-12, 1 - skew * sr + (kurt - 1) / 4 * sr * sr))
    return float(stats.norm.cdf((sr - sr0) * math.sqrt(n - 1) / denom))


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
    return {
        "total_return": float(equity[-1] - 1) if len(equity) else 0.0,
        "sharpe": sharpe(r, per_year),
        "deflated_sharpe_prob": deflated_sharpe_prob(r, n_trials),
        "sortino": float(r.mean() / downside.std(ddof=1) * math.sqrt(per_year)) if len(downside) > 1 else 0.0,
        "max_drawdown": float(-dd.min()) if len(dd) else 0.0,
        "trades": float(len(trades)),
        "win_rate": len(wins) / len(trades) if trades else 0.0,
        "profit_factor": profit_factor(wins, losses),
        "turnover": float(np.abs(np.diff(np.concatenate([[0.0], signal]))).sum()),
        "exposure": float(np.mean(signal)) if len(signal) else 0.0,
    }


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
    out = {"bars": float(len(t)), "accuracy": float(((p > 0.5) == t).mean()) if len(t) else 0.0,
           "majority_rate": float(max(t.mean(), 1 - t.mean())) if len(t) else 0.0,
           "selective_accuracy": float(((p[conf] > 0.5) == t[conf]).mean()) if conf.any() else float("nan"),
           "coverage": float(conf.mean()) if len(t) else 0.0,
           "brier": float(np.mean((p - t) ** 2)) if len(t) else 0.0}
    out["auc"] = float(roc_auc_score(t, p)) if len(np.unique(t)) == 2 else float("nan")
    return out


def sma_signal(df: pd.DataFrame, fast: int = 12, slow: int = 48) -> np.ndarray:
    c = df["close"]
    return np.asarray((c.rolling(fast).mean() > c.rolling(slow).mean()).to_numpy(dtype=float))


def only(config: EnsembleConfig, name: str) -> EnsembleConfig:
    return EnsembleConfig(models=[s for s in config.models if s.name == name], threshold=config.threshold)


def fold_models(config: EnsembleConfig, tft_probs: pd.Series | None) -> dict[str, Model]:
    """Fresh models for one fold; the TFT (trained once, before the test region) is looked up."""
    models = EnsemblePredictor(config).models
    if "tft" in models:
        models["tft"] = Precomputed(models["tft"].features, tft_probs)
    return models


def train_tft(series: dict[str, pd.DataFrame], holdout: float, **params: Any) -> TFTModel:
    """One TFT across symbols, trained on the part of every series before its test region."""
    parts = []
    for sym, feats in series.items():
        part = feats.iloc[: int(len(feats) * (1 - holdout))].copy()
        part["symbol"] = sym
        parts.append(part)
    return TFTModel(list(FEATURE_SETS["price_history"]), **params).fit(pd.concat(parts), pd.Series(dtype=float))


def run_series(df: pd.DataFrame, config: EnsembleConfig, wf: WalkForward, holdout: float, costs: Costs,
               risk: RiskManager, n_trials: int = 1, tft_probs: pd.Series | None = None) -> dict[str, Any]:
    """Walk-forward over the final ``holdout`` share of one series; every strategy on the same bars."""
    feats = build(df)
    y = label_up(df, wf.horizon)
    start = int(len(df) * (1 - holdout))
    variants = {"ensemble": config, "lgbm_only": only(config, "lgbm")}
    if tft_probs is not None:
        variants["tft_only"] = only(config, "tft")
    probs = {k: np.full(len(df), np.nan) for k in variants}
    for train, test in wf.folds(start, len(df)):
        for name, cfg in variants.items():
            model = EnsemblePredictor(cfg, fold_models(cfg, tft_probs)).fit(feats.iloc[train], y.iloc[train])
            probs[name][test] = model.predict(feats.iloc[test])["prob_up"].to_numpy()
    sl = slice(start, len(df))
    test_df = df.iloc[sl]
    per_year = 365 * 86400_000 / infer_timeframe_ms(df)
    size = risk_sizes(feats, risk, wf.horizon)[sl]
    signals = {name: positions(p[sl], config.threshold) for name, p in probs.items()}
    signals["buy_and_hold"] = np.ones(len(test_df))
    signals["sma_crossover"] = sma_signal(df)[sl]
    report: dict[str, Any] = {"bars": len(test_df), "test_from_ms": int(test_df.index[0]),
                              "test_to_ms": int(test_df.index[-1]), "strategies": {}}
    curves = {}
    for name, sig in signals.items():
        sized = size if name not in ("buy_and_hold",) else np.ones(len(sig))
        ret = simulate(test_df, sig, sized, costs)
        curves[name] = ret
        entry = trading_metrics(ret, sig, per_year, n_trials if name == "ensemble" else 1)
        if name in probs:
            entry.update(prediction_metrics(probs[name][sl], y.to_numpy()[sl], config.threshold))
        report["strategies"][name] = entry
    report["curves"] = curves
    return report


def mean_over_pairs(reports: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = ("accuracy", "majority_rate", "selective_accuracy", "coverage", "auc", "brier", "sharpe",
            "deflated_sharpe_prob", "max_drawdown", "total_return", "win_rate", "turnover")
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="backtest", description=__doc__.splitlines()[0])
    ap.add_argument("--ohlcv-dir", type=cli_path, required=True)
    ap.add_argument("--pattern", default="*-5m.csv")
    ap.add_argument("--holdout", type=float, default=0.25)
    ap.add_argument("--config", type=cli_path, default=DEFAULT_CONFIG)
    ap.add_argument("--out", type=cli_path, default=None, help="report dir (default <data dir>/backtests)")
    ap.add_argument("--no-tft", action="store_true", help="leave the TFT out (it trains for a minute or two)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if not 0 < args.holdout < 1:
            raise UsageError("--holdout: must be between 0 and 1")
        settings = Settings()
        config = EnsembleConfig.load(args.config)
        files = sorted(args.ohlcv_dir.glob(args.pattern)) if args.ohlcv_dir.is_dir() else []
        if not files:
            raise UsageError(f"--ohlcv-dir: no files matching {args.pattern} in {args.ohlcv_dir}")
        risk = RiskManager(load_policy(settings.risk_policy))
        out = args.out or settings.data_dir / "backtests"
        out.mkdir(parents=True, exist_ok=True)
        summary: dict[str, Any] = {}
        frames = {f.stem: load_ohlcv(f) for f in files}
        tft_probs: dict[str, pd.Series | None] = dict.fromkeys(frames)
        if not args.no_tft and any(s.name == "tft" and s.weight > 0 for s in config.models):
            feats = {k: build(v) for k, v in frames.items()}
            t0 = time.monotonic()
            tft = train_tft(feats, args.holdout)
            summary["tft_train_seconds"] = time.monotonic() - t0
            tft_probs = {k: pd.Series(tft.predict_proba(v), index=v.index) for k, v in feats.items()}
        for f in files:
            rep = run_series(frames[f.stem], config, WalkForward(), args.holdout, Costs(), risk,
                             tft_probs=tft_probs[f.stem])
            plot(rep.pop("curves"), f.stem, out / f"{f.stem}.png")
            summary[f.stem] = rep
            s = rep["strategies"]
            log.info("%s: %s", f.stem, " | ".join(
                f"{k} acc {v.get('accuracy', float('nan')):.3f} sharpe {v['sharpe']:.2f} dd {v['max_drawdown']:.3f}"
                for k, v in s.items()))
        summary["mean_over_pairs"] = mean_over_pairs({k: v for k, v in summary.items() if isinstance(v, dict)})
        for name, m in summary["mean_over_pairs"].items():
            log.info("MEAN %-14s %s", name, " ".join(f"{k} {v:.3f}" for k, v in m.items()))
        (out / "report.json").write_text(json.dumps(summary, indent=1, default=float))
    except UsageError as exc:
        print(f"backtest: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
