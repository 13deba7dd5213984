"""Helpers of ``backend/scripts/nightly_retrain.sh``.

``python -m backend.ml.research.nightly symbols``            the symbols to retrain (engine config, else settings)
``python -m backend.ml.research.nightly range --days 30``     START END of the last N days of collected data
``python -m backend.ml.research.nightly report STATUS ...``   record a run (Redis metrics + alert event)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import redis
import yaml

from backend.src.core.buckets import RETRAIN_BUCKETS, bucket_field
from backend.src.core.errors import EXIT_USAGE, UsageError
from backend.src.core.keys import Keys
from backend.src.core.redis_launcher import discover_url
from backend.src.core.redis_url import connect, redact
from backend.src.core.settings import Settings, cli_path, cli_settings
from backend.src.market.candles import load_candles

EVENTS_MAXLEN = 10_000


def symbols(settings: Settings) -> list[str]:
    if settings.engine_config is not None:
        try:
            doc = yaml.safe_load(settings.engine_config.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"LEVIBOT_ENGINE_CONFIG: {settings.engine_config}: {exc}") from exc
        syms = [s for s, cfg in (doc.get("symbols") or {}).items() if (cfg or {}).get("enabled", True)]
        if syms:
            return [str(s).upper() for s in syms]
    if settings.retrain_symbols:
        return [s.upper() for s in settings.retrain_symbols]
    try:  # the fleet the manager last ran on this data dir (its registry mirror)
        fleet = json.loads(settings.registry_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        fleet = {}
    if isinstance(fleet, dict) and fleet:
        return sorted(str(s).upper() for s in fleet)
    raise UsageError("no symbols to retrain: set LEVIBOT_RETRAIN_SYMBOLS=BTCUSDT,ETHUSDT or LEVIBOT_ENGINE_CONFIG "
                     "(the manager's --config), or run the manager once on this data dir "
                     "(python -m backend.src.engine_manager --symbols BTCUSDT,ETHUSDT) so that its symbols are known")


def data_range(settings: Settings, syms: list[str], days: int, timeframe: str = "5m") -> tuple[str, str]:
    """The last ``days`` days that every symbol's collected file covers, as YYYY-MM-DD bounds."""
    ends = []
    for sym in syms:
        path = settings.data_dir / "ohlcv" / f"{sym}-{timeframe}.parquet"
        if not path.exists():
            raise UsageError(f"no collected candles for {sym} ({path}); run the data collector first")
        candles, _ = load_candles(path)
        ends.append(candles[-1].ts)
    end = datetime.fromtimestamp(min(ends) / 1000 + 86400, UTC).date()
    start = datetime.fromtimestamp(min(ends) / 1000 - days * 86400, UTC).date()
    return start.isoformat(), end.isoformat()


def report(r: redis.Redis, keys: Keys, status: str, duration_s: float, *, step: str = "", version: str = "",
           detail: str = "", sharpe: float | None = None, now: float | None = None) -> None:
    """Metrics the API exposes, and an event the manager's alert dispatcher sends on."""
    now = time.time() if now is None else now
    bucket = bucket_field(duration_s, RETRAIN_BUCKETS)
    pipe = r.pipeline(transaction=True)
    pipe.hincrby(keys.retrain, f"{status}_total", 1)
    pipe.hincrby(keys.retrain, bucket, 1)
    pipe.hincrbyfloat(keys.retrain, "sum", duration_s)
    pipe.hincrby(keys.retrain, "count", 1)
    fields: dict[Any, Any] = {"last_status": status, "last_step": step, "last_detail": detail[:500],
                              "last_run_at": now, "last_duration_s": duration_s}
    if version:
        fields["candidate_version"] = version
    if status == "success" and version:
        fields["production_version"] = version
        if sharpe is not None:
            fields["model_sharpe"] = sharpe
    pipe.hset(keys.retrain, mapping=fields)
    event = {"success": "model_promoted", "rejected": "model_rejected", "failure": "retrain_failed"}[status]
    pipe.xadd(keys.events, {"type": event, "symbol": "", "reason": detail or step, "version": version,
                            "ts": now}, maxlen=EVENTS_MAXLEN, approximate=True)
    pipe.execute()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nightly", description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=cli_path, default=None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("symbols")
    rng = sub.add_parser("range")
    rng.add_argument("--days", type=int, default=None)
    rep = sub.add_parser("report")
    rep.add_argument("status", choices=["success", "failure", "rejected"])
    rep.add_argument("--duration", type=float, required=True)
    rep.add_argument("--step", default="")
    rep.add_argument("--version", default="")
    rep.add_argument("--detail", default="")
    args = ap.parse_args(argv)
    try:
        settings = cli_settings(args.data_dir)
        if args.cmd == "symbols":
            print(",".join(symbols(settings)))
        elif args.cmd == "range":
            print(*data_range(settings, symbols(settings), args.days or settings.retrain_days,
                              settings.retrain_timeframe))
        else:
            sharpe = None
            if args.status == "success" and args.version:
                meta = settings.models_dir / args.version / "model_metadata.json"
                sharpe = json.loads(meta.read_text()).get("backtest_sharpe") if meta.exists() else None
            if not settings.redis_url and not (settings.redis_dir / "url").exists():
                raise UsageError(f"no Redis to record the run in: no LEVIBOT_REDIS_URL and no embedded Redis in "
                                 f"{settings.redis_dir} (start the manager: python -m backend.src.engine_manager)")
            url = discover_url(settings)
            try:
                report(connect(url, timeout=3.0), Keys(settings.namespace), args.status, args.duration,
                       step=args.step, version=args.version, detail=args.detail, sharpe=sharpe)
            except redis.RedisError as exc:  # the run's own log still has it; cron mails stderr
                print(f"nightly: could not record the run in redis at {redact(url)}: {exc}", file=sys.stderr)
                return 1
    except UsageError as exc:
        print(f"nightly: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
