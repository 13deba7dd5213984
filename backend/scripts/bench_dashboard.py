"""Dashboard benchmark: ``python -m backend.scripts.bench_dashboard --engines 50 --dashboards 20``.

Starts Redis (project launcher) and the real manager with N engines (synthetic feed) and its API,
then measures:

* the API process's CPU (% of one core, sampled every second with psutil) idle, and with D
  dashboards connected to the live feed (``/stream/fleet``, each read by its own client thread),
  and how far behind the feed is: the age of the newest heartbeat in each pushed body when it
  arrives (``taken_at`` is when the API read Redis; an engine beats every 250 ms);
* the fleet page's first paint in headless Chromium (the system's, through Playwright): from
  navigation start to the table holding all N rows, and the browser's first-contentful-paint,
  over ``--loads`` fresh page loads.

Each figure is printed as min / median / p95.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time

import httpx
import psutil

from backend.scripts.bench_fleet import fleet

NS = "benchdash:"


def stats(label: str, xs: list[float], unit: str) -> None:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
    print(f"{label}: min {xs[0]:.2f} / median {statistics.median(xs):.2f} / p95 {p95:.2f} {unit} "
          f"(mean {statistics.fmean(xs):.2f}, n={len(xs)})")


def api_process(mgr: subprocess.Popen[bytes], port: int) -> psutil.Process:
    for p in psutil.Process(mgr.pid).children(recursive=True):
        if "uvicorn" in " ".join(p.cmdline()) and str(port) in p.cmdline():
            return p
    raise SystemExit("bench_dashboard: no API process found")


def cpu_samples(proc: psutil.Process, seconds: int) -> list[float]:
    proc.cpu_percent(None)
    out = []
    for _ in range(seconds):
        time.sleep(1.0)
        out.append(proc.cpu_percent(None))
    return out


def reader(url: str, stop: threading.Event, lags: list[float], counts: list[int]) -> None:
    """One dashboard: reads the SSE stream; records each body's staleness on arrival."""
    n = 0
    with httpx.stream("GET", url + "/stream/fleet", timeout=httpx.Timeout(5.0, read=60.0)) as res:
        for line in res.iter_lines():
            if stop.is_set():
                break
            if line.startswith("data: "):
                body = json.loads(line[6:])
                beats = [e["heartbeat_at"] for e in body["engines"] if e.get("heartbeat_at")]
                if beats:
                    lags.append(time.time() - max(beats))
                n += 1
    counts.append(n)


def first_paint(url: str, engines: int, loads: int) -> tuple[list[float], list[float]]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    chromium = shutil.which("chromium") or shutil.which("google-chrome")
    if chromium is None:
        raise SystemExit("bench_dashboard: chromium not installed (Debian: apt-get install chromium)")
    table, fcp = [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(loads):
            page = b.new_page()
            page.goto(url + "/")
            page.wait_for_function("([n]) => document.querySelectorAll('#fleet tbody tr').length >= n", arg=[engines])
            table.append(page.evaluate("performance.now()"))
            fcp.append(page.evaluate(
                "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"))
            page.close()
        b.close()
    return table, fcp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", type=int, default=50)
    ap.add_argument("--dashboards", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--loads", type=int, default=10)
    args = ap.parse_args(argv)
    if min(args.engines, args.dashboards, args.seconds, args.loads) < 1:
        print("bench_dashboard: error: --engines/--dashboards/--seconds/--loads must be positive", file=sys.stderr)
        return 2
    symbols = [f"D{i:02d}USDT" for i in range(args.engines)]
    stop = threading.Event()
    with fleet("bench_dashboard", NS, symbols, max_engines=str(args.engines), workers="0") as f:
        url = f"http://127.0.0.1:{f.api_port}"
        api = api_process(f.manager, f.api_port)
        print(f"{args.engines} engines running; API pid {api.pid}")
        stats("API CPU, no dashboard", cpu_samples(api, min(args.seconds, 10)), "% of a core")
        lags: list[float] = []
        counts: list[int] = []
        threads = [threading.Thread(target=reader, args=(url, stop, lags, counts), daemon=True)
                   for _ in range(args.dashboards)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        lags.clear()
        stats(f"API CPU, {args.dashboards} dashboards on the live feed", cpu_samples(api, args.seconds),
              "% of a core")
        stop.set()
        stats("feed staleness on arrival (now - newest heartbeat in the body)", [x * 1000 for x in lags], "ms")
        table, fcp = first_paint(url, args.engines, args.loads)
        stats(f"fleet page: navigation start -> all {args.engines} rows shown", table, "ms")
        stats("fleet page: first-contentful-paint", fcp, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
