"""download_data against the local Binance stand-in serving real candles."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.src.core.settings import REPO_ROOT
from backend.src.market.candles import load_candles
from backend.src.market.perpetual import read_funding_csv
from backend.tests.conftest import OHLCV_DIR
from backend.tests.fakes.binance_futures import BinanceFuturesServer
from backend.tests.fakes.binance_server import BinanceServer


def day_ms(day: str) -> int:
    return int(dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture
def real_rows() -> list[list[float]]:
    candles, _ = load_candles(OHLCV_DIR / "ETH_BTC-5m.csv")
    return [[c.ts, c.open, c.high, c.low, c.close, c.volume] for c in candles]


@pytest.fixture
def binance(real_rows: list[list[float]]) -> Iterator[BinanceServer]:
    server = BinanceServer({"ETHBTC": real_rows}, timeframe="5m")
    yield server
    server.close()


def argv(out: Path, start: str, end: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "backend.src.market.download", "--exchange", "binance", "--symbols", "ETHBTC",
            "--timeframe", "5m", "--start", start, "--end", end, "--out", str(out), *extra]


def env_for(binance: BinanceServer) -> dict[str, str]:
    return {"LEVIBOT_EXCHANGE_BASE_URL": binance.url, "PATH": "/usr/bin:/bin", "LEVIBOT_EXCHANGE_TIMEOUT_S": "2"}


def run(binance: BinanceServer, out: Path, start: str, end: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv(out, start, end, *extra), env=env_for(binance), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_a_progress_bar_on_a_terminal(binance: BinanceServer, real_rows: list[list[float]], tmp_path: Path) -> None:
    first = dt.datetime.fromtimestamp(real_rows[0][0] / 1000, dt.UTC) + dt.timedelta(days=1)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 columns wide
    end = first + dt.timedelta(days=2)
    p = subprocess.Popen(argv(tmp_path, first.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")), env=env_for(binance),
                         cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""
    with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
        while chunk := os.read(master, 4096):
            seen += chunk
    os.close(master)
    assert p.wait(60) == 0
    assert b"ETHBTC 5m" in seen and b"100%" in seen and b"576/576" in seen


def test_download_resume_and_incremental(binance: BinanceServer, real_rows: list[list[float]], tmp_path: Path) -> None:
    first = dt.datetime.fromtimestamp(real_rows[0][0] / 1000, dt.UTC) + dt.timedelta(days=1)
    start, mid, end = (first + dt.timedelta(days=d) for d in (0, 3, 6))
    fmt = "%Y-%m-%d"
    res = run(binance, tmp_path, start.strftime(fmt), mid.strftime(fmt))
    assert res.returncode == 0, res.stderr
    path = tmp_path / "ETHBTC-5m.parquet"
    got, _ = load_candles(path)
    want = [r for r in real_rows if day_ms(start.strftime(fmt)) <= r[0] < day_ms(mid.strftime(fmt))]
    assert [[c.ts, c.open, c.high, c.low, c.close, c.volume] for c in got] == want
    assert "ETHBTC:" in res.stdout and "\r" not in res.stderr, "in a pipe: no bar, one line per page"
    lines = res.stderr.splitlines()
    assert lines and all(line.startswith("ETHBTC 5m: ") and " candles, " in line for line in lines)
    last = dt.datetime.fromtimestamp(day_ms(mid.strftime(fmt)) / 1000 - 300, dt.UTC)  # the range's last candle
    assert lines[-1].endswith(f"up to {last:%Y-%m-%d %H:%M}")

    calls_before = sum(1 for _, p in binance.requests if p == "/api/v3/klines")
    res = run(binance, tmp_path, start.strftime(fmt), end.strftime(fmt))  # extends: only the new days
    assert res.returncode == 0, res.stderr
    calls = sum(1 for _, p in binance.requests if p == "/api/v3/klines") - calls_before
    new_rows = sum(1 for r in real_rows if day_ms(mid.strftime(fmt)) <= r[0] < day_ms(end.strftime(fmt)))
    assert calls <= new_rows // 1000 + 2, f"{calls} pages for {new_rows} new candles"
    got, report = load_candles(path)
    assert len(got) == sum(1 for r in real_rows if day_ms(start.strftime(fmt)) <= r[0] < day_ms(end.strftime(fmt)))
    assert f"{report.gaps} gap(s)" in res.stdout

    calls_before = sum(1 for _, p in binance.requests if p == "/api/v3/klines")
    res = run(binance, tmp_path, start.strftime(fmt), end.strftime(fmt))
    assert res.returncode == 0 and "ETHBTC: 0 new" in res.stdout
    assert sum(1 for _, p in binance.requests if p == "/api/v3/klines") - calls_before <= 1


def test_download_survives_rate_limits(binance: BinanceServer, real_rows: list[list[float]], tmp_path: Path) -> None:
    day = dt.datetime.fromtimestamp(real_rows[0][0] / 1000, dt.UTC) + dt.timedelta(days=1)
    binance.plan.extend(["429", "500"])
    res = run(binance, tmp_path, day.strftime("%Y-%m-%d"), (day + dt.timedelta(days=1)).strftime("%Y-%m-%d"))
    assert res.returncode == 0, res.stderr
    assert len(load_candles(tmp_path / "ETHBTC-5m.parquet")[0]) == 288


def test_bad_arguments(binance: BinanceServer, tmp_path: Path) -> None:
    res = run(binance, tmp_path, "2024-13-01", "2024-12-01")
    assert res.returncode == 2 and "--start: expected YYYY-MM-DD" in res.stderr
    res = run(binance, tmp_path, "2024-02-01", "2024-01-01")
    assert res.returncode == 2 and "--end: must be after --start" in res.stderr


def test_perpetual_candles_and_their_funding_history(real_rows: list[list[float]], tmp_path: Path) -> None:
    first = dt.datetime.fromtimestamp(real_rows[0][0] / 1000, dt.UTC) + dt.timedelta(days=1)
    start, end = first.strftime("%Y-%m-%d"), (first + dt.timedelta(days=3)).strftime("%Y-%m-%d")
    times = range(day_ms(start) - 86_400_000, day_ms(end) + 86_400_000, 8 * 3_600_000)
    rates = [(t, 0.0001 * ((i % 5) - 1)) for i, t in enumerate(times)]
    server = BinanceFuturesServer({"ETHUSDT": real_rows}, timeframe="5m", funding_history={"ETHUSDT": rates})
    try:
        cmd = [sys.executable, "-m", "backend.src.market.download", "--exchange", "binance", "--symbols", "ETHUSDT",
               "--timeframe", "5m", "--start", start, "--end", end, "--out", str(tmp_path), "--market", "perpetual"]
        res = subprocess.run(cmd, env=env_for(server), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert ("GET", "/fapi/v1/klines") in server.requests and ("GET", "/api/v3/klines") not in server.requests
        assert len(load_candles(tmp_path / "ETHUSDT-5m.parquet")[0]) == 3 * 288
        funding = read_funding_csv(tmp_path / "ETHUSDT-funding.csv")  # the file a funding_file reads
        want = [(t, r) for t, r in rates if day_ms(start) <= t < day_ms(end)]
        assert [(t, funding.rate(t)) for t, _ in want] == [(t, pytest.approx(r)) for t, r in want]
        assert "9 funding rate(s)" in res.stdout
        again = subprocess.run(cmd, env=env_for(server), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "ETHUSDT: 0 funding rate(s)" in again.stdout
    finally:
        server.close()
