"""Prometheus exposition of a fleet snapshot (text format 0.0.4)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from backend.src.core.buckets import RETRAIN_BUCKETS
from backend.src.core.fleet import STATUSES, Snapshot, cumulative


class SnapshotCollector(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        s = self.snap
        up = GaugeMetricFamily("levibot_engine_up", "1 if the engine is running with a fresh heartbeat",
                               labels=["symbol"])
        restarts = CounterMetricFamily("levibot_engine_restarts", "Watchdog restarts of the engine",
                                       labels=["symbol"])
        memory = CounterMetricFamily("levibot_engine_memory_restarts",
                                     "Graceful restarts for growing above max_rss_mb (not crashes)", labels=["symbol"])
        age = GaugeMetricFamily("levibot_engine_heartbeat_age_seconds", "Seconds since the last heartbeat",
                                labels=["symbol"])
        pnl = GaugeMetricFamily("levibot_engine_pnl_usd", "Total PnL (realised + unrealised, fees included)",
                                labels=["symbol"])
        daily = GaugeMetricFamily("levibot_engine_daily_pnl_usd", "PnL since the UTC day opened", labels=["symbol"])
        position = GaugeMetricFamily("levibot_engine_position", "Signed position, base currency", labels=["symbol"])
        stalled = GaugeMetricFamily("levibot_engine_stalled", "1 if alive but no candle for 3 candle periods",
                                    labels=["symbol"])
        for e in s.engines:
            sym = [e["symbol"]]
            up.add_metric(sym, 1.0 if e["up"] else 0.0)
            restarts.add_metric(sym, float(e["restarts"]))
            memory.add_metric(sym, float(e.get("memory_restarts", 0)))
            if e["last_heartbeat_age_s"] is not None:
                age.add_metric(sym, float(e["last_heartbeat_age_s"]))
            pnl.add_metric(sym, float(e["pnl"]))
            daily.add_metric(sym, float(e["daily_pnl"]))
            position.add_metric(sym, float(e["position"]))
            stalled.add_metric(sym, 1.0 if e["stalled"] else 0.0)
        yield from (up, restarts, memory, age, pnl, daily, position, stalled)
        yield from exposure_metrics(s)

        by_status = GaugeMetricFamily("levibot_engines", "Engines per status", labels=["status"])
        counts = s.counts()
        for status in STATUSES:
            by_status.add_metric([status], float(counts.get(status, 0)))
        by_status.add_metric(["stalled"], float(sum(1 for e in s.engines if e["stalled"])))
        yield by_status

        buckets, total = s.recovery_buckets()
        yield HistogramMetricFamily("levibot_watchdog_recovery_seconds", "Crash detected -> engine running again",
                                    buckets=buckets, sum_value=total)
        yield GaugeMetricFamily("levibot_global_stop_active", "1 while the portfolio-wide stop is active",
                                value=1.0 if s.global_stop else 0.0)
        managers = GaugeMetricFamily("levibot_manager_up", "Live managers (presence key fresh)", labels=["owner"])
        for m in s.managers:
            managers.add_metric([m.get("owner", "?")], 1.0)
        yield managers
        queues = GaugeMetricFamily("levibot_rq_queue_jobs", "Jobs waiting in an RQ queue (workers scale on it)",
                                   labels=["queue"])
        for q, n in s.queues.items():
            queues.add_metric([q], float(n))
        yield queues
        yield from retrain_metrics(s.retrain)
        yield from notify_metrics(s.notify)


def exposure_metrics(s: Snapshot) -> Iterator[Metric]:
    """The portfolio's gross (longs + shorts) and net (longs - shorts) exposure in USD, funding per symbol."""
    gross = net = 0.0
    funding = CounterMetricFamily("levibot_engine_funding_usd", "Funding received (+) or paid (-), perpetuals",
                                  labels=["symbol"])
    for e in s.engines:
        notional = e["position"] * float(e["last_price"] or 0) * float(e["usd_per_quote"] or 1)
        gross, net = gross + abs(notional), net + notional
        if e["market"] == "perpetual":
            funding.add_metric([e["symbol"]], float(e["funding"]) * float(e["usd_per_quote"] or 1))
    yield GaugeMetricFamily("levibot_exposure_gross_usd", "Sum of all position sizes, long and short", value=gross)
    yield GaugeMetricFamily("levibot_exposure_net_usd", "Longs minus shorts", value=net)
    yield funding


def retrain_metrics(rt: dict[str, str]) -> Iterator[Metric]:
    """What ``backend.ml.research.nightly report`` recorded: counters, duration histogram, production model."""
    yield HistogramMetricFamily("levibot_retrain_duration_seconds", "Nightly retrain wall time",
                                buckets=cumulative(rt, RETRAIN_BUCKETS), sum_value=float(rt.get("sum", 0)))
    yield CounterMetricFamily("levibot_retrain_success", "Retrains that promoted a model",
                              value=float(rt.get("success_total", 0)))
    yield CounterMetricFamily("levibot_retrain_failure", "Retrains that failed (production untouched)",
                              value=float(rt.get("failure_total", 0)))
    yield CounterMetricFamily("levibot_retrain_rejected", "Retrains whose model the validation gate kept out",
                              value=float(rt.get("rejected_total", 0)))
    sharpe = GaugeMetricFamily("levibot_model_sharpe_ratio", "Backtest Sharpe of the production model",
                               labels=["version"])
    if rt.get("production_version"):
        sharpe.add_metric([rt["production_version"]], float(rt.get("model_sharpe") or 0.0))
    yield sharpe


def notify_metrics(stats: dict[str, str]) -> Iterator[Metric]:
    """The notification webhooks: delivered and dead letters (every retry spent, or the queue full), per sink."""
    delivered = CounterMetricFamily("levibot_notifications_delivered", "Notifications a webhook accepted",
                                    labels=["sink"])
    dead = CounterMetricFamily("levibot_notifications_dead_letter",
                               "Notifications not delivered after every retry (or dropped on a full queue)",
                               labels=["sink"])
    for field_, n in sorted(stats.items()):
        what, _, sink = field_.partition(":")
        (delivered if what == "delivered" else dead).add_metric([sink], float(n))
    yield delivered
    yield dead


def render(snap: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    return generate_latest(registry)
