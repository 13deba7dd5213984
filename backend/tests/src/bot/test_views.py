"""The bot's answers as text (pure), the PnL windows from journal day openings, and the chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backend.src.bot import pnl, views
from backend.src.core.fleet import Snapshot, engine_view


def engine(symbol: str, **st: str) -> dict[str, Any]:
    base = {"status": "running", "pid": "42", "started_at": "1", "equity": "10000", "quote": "USDT",
            "usd_per_quote": "1"}
    return engine_view(symbol, {**base, **st}, "100.0", 100.5, 5.0)


def test_status_lists_every_engine_and_the_ones_down_first() -> None:
    snap = Snapshot(100.5, [engine("BTCUSDT", daily_pnl="12.5", pnl="20"),
                            engine("SOLUSDT", status="crashed", restarts="2", last_error="killed by SIGKILL")],
                    "2026-12-01|portfolio daily PnL -400 is below -3%")
    text = views.status_text(snap)
    assert text.splitlines()[0] == "LeviBot: 2 engines — 1 running, 1 crashed"
    assert "🚨 GLOBAL STOP (2026-12-01): portfolio daily PnL -400 is below -3%" in text
    assert "• SOLUSDT crashed, 2 restarts: killed by SIGKILL" in text
    assert "🟢 BTCUSDT running · pos 0 · today +12.50 USDT" in text and "🔴 SOLUSDT crashed" in text
    assert views.status_text(Snapshot(0, [], None)) == "No engines are registered yet."


def test_positions_engines_risk_model_texts() -> None:
    snap = Snapshot(100.5, [engine("ETHUSDT", position="-2", avg_price="100", last_price="90", pnl="20"),
                            engine("BTCUSDT")], None)
    assert "• ETHUSDT short 2 @ 100 → 90 (+10.00%) · PnL +20.00 USDT" in views.positions_text(snap)
    perp = Snapshot(100.5, [engine("SOLUSDT", position="-3", avg_price="100", last_price="95", pnl="15",
                                   market="perpetual", leverage="5", side="short", margin="60",
                                   liquidation_price="119.4", funding="0.35")], None)
    assert "   5x isolated · liquidation 119.4 · margin 60.00 · funding +0.35" in views.positions_text(perp)
    assert "ETHUSDT: running, pid 42" in views.engines_text(snap)
    policy = {"max_concurrent_positions": 15, "max_daily_loss_pct": 3.0, "max_symbol_risk_pct": 2.0,
              "max_symbol_exposure_pct": 20.0, "max_correlated_positions": 5,
              "position_sizing": {"method": "kelly", "min_position_usd": 10, "max_position_usd": 5000},
              "correlation_groups": {"majors": ["BTCUSDT", "ETHUSDT"]}}
    risk = views.risk_text(None, {"ETHUSDT": "majors|200.0"}, policy)
    assert "Open positions: 1 / 15" in risk and "Group majors: 1 / 5 open (BTCUSDT, ETHUSDT)" in risk
    assert "not published yet" in views.risk_text(None, {}, None)
    text = views.model_text("ensemble_20261130_020000", {"backtest_sharpe": 1.23456, "timeframe": "5m"},
                            {"last_status": "rejected", "last_run_at": "0", "last_duration_s": "61",
                             "last_detail": "Sharpe below production", "rejected_total": "2"},
                            {"action": "rollback", "version": "ensemble_20261130_020000", "at": 0})
    assert "backtest_sharpe: 1.2346" in text and "Last retrain: rejected 1970-01-01 00:00 UTC, 61s" in text
    assert "Retrains: rejected 2" in text and "Last change: rollback to ensemble_20261130_020000" in text


def test_long_answers_are_split_on_lines_under_telegrams_limit() -> None:
    text = "\n".join(f"line {i} " + "x" * 90 for i in range(200))
    parts = views.chunks(text)
    assert len(parts) == 5 and all(len(p) <= views.MAX_MESSAGE for p in parts)
    assert "\n".join(parts) == text


def journal(path: Path, days: list[tuple[str, float]]) -> None:
    lines = [json.dumps({"seq": i, "gen": 1, "type": "day", "day": d, "equity": eq}, separators=(",", ":"))
             for i, (d, eq) in enumerate(days)]
    path.write_text("\n".join([*lines, '{"seq":99,"type":"fill","side":"buy"}', '{"seq":100,"type":"da']))


def test_pnl_windows_from_day_openings(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT.jsonl"
    journal(path, [("2026-11-01", 9000.0), ("2026-11-25", 9500.0), ("2026-11-30", 9800.0), ("2026-12-01", 9900.0)])
    marks = pnl.day_marks(path)  # the torn last line is skipped
    assert marks[-1] == ("2026-12-01", 9900.0) and len(marks) == 4
    eng = [engine("BTCUSDT", equity="10000")]
    assert pnl.rows(eng, {"BTCUSDT": marks}, 1)[0] == {"symbol": "BTCUSDT", "pnl": 100.0, "quote": "USDT",
                                                       "usd": 100.0, "since": "2026-12-01"}
    assert pnl.rows(eng, {"BTCUSDT": marks}, 7)[0]["since"] == "2026-11-25"
    assert pnl.rows(eng, {"BTCUSDT": marks}, 30)[0]["pnl"] == 500.0  # 2026-11-01 is 31 days back: not in 30d
    assert pnl.rows(eng, {}, 7)[0]["since"] == "—" and pnl.day_marks(tmp_path / "none.jsonl") == []
    text = views.pnl_text("7d", pnl.rows(eng, {"BTCUSDT": marks}, 7), [])
    assert text == "PnL 7d (USD total +500.00):\n• BTCUSDT: +500.00 USDT since 2026-11-25"


def test_chart_is_a_png_of_the_usd_equity() -> None:
    pts = pnl.series([("2026-11-30", 9800.0), ("2026-12-01", 9900.0)], [(1764590400.0 + 60 * i, 9900.0 + i)
                                                                        for i in range(100)], "2026-11-30")
    png = pnl.chart_png({"BTCUSDT": pts}, {"BTCUSDT": 1.0}, "Portfolio equity (USD), 7d")
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert pnl.chart_png({"BTCUSDT": pts[:1]}, {"BTCUSDT": 1.0}, "t") is None
