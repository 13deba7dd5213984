"""Screenshots of every dashboard page from a running manager, for the docs:
``python -m backend.scripts.dashboard_screenshots --url http://127.0.0.1:8000 --out docs/img/dashboard``.

Drives the system's Chromium (Playwright); with ``LEVIBOT_API_TOKEN`` set it also runs a backtest
from the page (synthetic candles, two strategies), compares the two runs and runs the parity panel
for the first engine, as a user would.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import Any

from backend.src.core.settings import cli_path


def run_backtest(page: Any, strategy: str) -> str:
    page.goto(page.url.split("#")[0] + "#/backtests")
    page.wait_for_selector("#backtest-form")
    page.select_option("select[name=strategy]", strategy)
    before = page.url
    page.click("#run-backtest")
    page.wait_for_function("([u]) => location.href !== u && location.hash.startsWith('#/backtests/')", arg=[before],
                           timeout=120_000)
    page.wait_for_selector("#backtest-result canvas")
    return str(page.url.rsplit("/", 1)[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--symbol", default=None, help="the engine for the symbol and parity pages (default: the first)")
    ap.add_argument("--out", type=cli_path, default=cli_path("docs/img/dashboard"))
    args = ap.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("google-chrome")
    if chromium is None:
        print("dashboard_screenshots: error: chromium not installed (Debian: apt-get install chromium)",
              file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    args.out.mkdir(parents=True, exist_ok=True)
    token = os.environ.get("LEVIBOT_API_TOKEN", "")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = b.new_page(viewport={"width": 1600, "height": 900})
        page.goto(args.url + "/")
        page.wait_for_selector("#fleet tbody tr")
        first = args.symbol or page.locator("#fleet tbody tr").first.get_attribute("data-symbol")

        def shot(route: str, name: str, wait: str = "main h1") -> None:
            page.goto(f"{args.url}/#{route}")
            page.wait_for_selector(wait)
            time.sleep(1.0)
            page.screenshot(path=str(args.out / f"{name}.png"), full_page=name not in ("backtest",))
            print(args.out / f"{name}.png")

        shot("/", "fleet", "#fleet tbody tr")
        shot("/portfolio", "portfolio", "#portfolio-chart canvas")
        shot(f"/symbol/{first}", "symbol", "#candles canvas")
        shot("/risk", "risk")
        shot("/models", "models")
        if token:
            page.evaluate("([t]) => sessionStorage.setItem('levibot.token', t)", [token])
            a = run_backtest(page, "sma_crossover")
            b2 = run_backtest(page, "trend_htf.levi.yaml")
            shot(f"/backtests/{b2}", "backtest", "#backtest-result canvas")
            shot(f"/backtests/{a},{b2}", "backtest_compare", "#compare-chart canvas")
            page.goto(f"{args.url}/#/parity/{first}")
            page.click("#run-parity")
            page.wait_for_selector("#parity-verdict", timeout=120_000)
            page.screenshot(path=str(args.out / "parity.png"), full_page=True)
            print(args.out / "parity.png")
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
