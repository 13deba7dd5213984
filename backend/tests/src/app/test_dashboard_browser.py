"""The dashboard in a real browser: headless Chromium (the system's, driven by Playwright; nothing is
downloaded) against a real manager, its API, engines and RQ workers. Screenshots go to
``$LEVIBOT_TEST_ARTIFACTS`` (default ``test-artifacts/`` in the repository, ignored by git)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from backend.src.core.settings import REPO_ROOT
from backend.tests.conftest import require_binary, wait_for
from backend.tests.integration.helpers import running_pid
from backend.tests.machine import MachineLock

pytestmark = [pytest.mark.slow, pytest.mark.integration]
SYMS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
ARTIFACTS = Path(os.environ.get("LEVIBOT_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.fixture
def browser() -> Iterator[Any]:
    import shutil

    chromium = shutil.which("chromium") or shutil.which("google-chrome") or require_binary("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


class Dashboard:
    def __init__(self, browser: Any, url: str) -> None:
        self.url = url
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    def open(self, route: str = "") -> None:
        self.page.goto(self.url + "/" + (f"#{route}" if route else ""))

    def cell(self, symbol: str, column: int) -> str:
        return str(self.page.locator(f'#fleet tr[data-symbol="{symbol}"] td').nth(column).inner_text())

    def set_token(self, token: str) -> None:
        self.page.click("#token-button")
        self.page.fill("#token-input", token)
        self.page.click("#token-dialog button[value=save]")

    def toast(self, expect: str) -> str:
        """The toast once it says ``expect`` (an earlier one may still be showing)."""
        self.page.wait_for_function("([t]) => !document.getElementById('toast').hidden && "
                                    "document.getElementById('toast').textContent.includes(t)", arg=[expect],
                                    timeout=5000)
        return str(self.page.inner_text("#toast"))

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def csp_violations(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m or "pageerror" in m]


@pytest.fixture
def dashboard(manager_api: Callable[..., str], browser: Any) -> Callable[..., Dashboard]:
    def start(symbols: list[str], *args: str, **env: object) -> Dashboard:
        return Dashboard(browser, manager_api(symbols, *args, **env))

    return start



def test_fleet_is_live_kill9_shows_without_reload_and_control_needs_the_token(
        dashboard: Callable[..., Dashboard], r: redis.Redis, ns: str, api_token: str, machine: MachineLock) -> None:
    d = dashboard(SYMS, analytics_enabled="true")
    t0 = time.monotonic()
    d.open()
    d.page.wait_for_function("() => document.querySelectorAll('#fleet tbody tr').length === 3")
    first_paint = time.monotonic() - t0
    assert first_paint < 5, first_paint
    assert [d.page.locator("#fleet tbody tr").nth(i).get_attribute("data-symbol") for i in range(3)] == sorted(SYMS)
    assert d.page.inner_text("#live") == "live"
    pid = running_pid(r, ns, "BTCUSDT")
    wait_for(lambda: d.cell("BTCUSDT", 2) == str(pid), 3, what="pid shown")
    d.page.evaluate("window.__not_reloaded = true")
    d.shot("fleet")

    with machine.alone():  # a real-time bound: measured with the machine to ourselves
        os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
        killed = time.monotonic()
        new = wait_for(lambda: (p := running_pid(r, ns, "BTCUSDT")) not in (None, pid) and p, 10, what="restart")
        d.page.wait_for_function(
            "([pid]) => document.querySelector('#fleet tr[data-symbol=BTCUSDT] td:nth-child(3)').textContent === pid",
            arg=[str(new)], timeout=2000)
        shown_after = time.monotonic() - killed
    assert shown_after <= 2.0 + 0.5, shown_after  # within 2 s of the kill (the wait above times out at 2 s)
    assert d.cell("BTCUSDT", 4) == "1"  # restarts
    assert "SIGKILL" in d.page.locator('#fleet tr[data-symbol="BTCUSDT"] td.err').get_attribute("title")
    assert d.page.evaluate("window.__not_reloaded") is True

    # Without the token: refused in the page before any request, and by the API.
    eth = running_pid(r, ns, "ETHUSDT")
    d.page.click('#fleet tr[data-symbol="ETHUSDT"] button[data-action=stop]')
    d.page.click("#confirm-ok")
    assert "refused" in d.toast("refused")
    assert httpx.post(d.url + "/engines/ETHUSDT/stop").status_code == 401
    time.sleep(0.5)
    assert running_pid(r, ns, "ETHUSDT") == eth

    # With it: a destructive action asks first; cancelled, nothing happens; confirmed, the result shows.
    d.set_token(api_token)
    d.page.click('#fleet tr[data-symbol="ETHUSDT"] button[data-action=restart]')
    d.page.click("#confirm button[value=cancel]")
    time.sleep(0.5)
    assert running_pid(r, ns, "ETHUSDT") == eth
    d.page.click('#fleet tr[data-symbol="ETHUSDT"] button[data-action=restart]')
    d.page.click("#confirm-ok")
    wait_for(lambda: "restarting" in d.page.inner_text("#toast"), 5, what="result shown")
    wait_for(lambda: running_pid(r, ns, "ETHUSDT") not in (None, eth), 10, what="ETH restarted")
    token_in_storage = d.page.evaluate("sessionStorage.getItem('levibot.token')")
    assert token_in_storage == api_token and d.page.evaluate("document.cookie") == ""
    assert api_token not in d.page.url
    for route, name in (("/portfolio", "portfolio"), ("/symbol/BTCUSDT", "symbol"), ("/risk", "risk"),
                        ("/models", "models")):
        d.open(route)
        d.page.wait_for_selector("main h1")
        time.sleep(0.5)
        d.shot(name)
    # the long history from the analytics store: a column per symbol, and the kill above as an incident
    d.open("/portfolio")
    d.page.wait_for_selector("#store-history table")
    history = d.page.inner_text("#store-history")
    assert all(s in history for s in SYMS) and "crashed" in history, history
    d.open("/symbol/BTCUSDT")
    d.page.wait_for_selector("#candles canvas")
    d.page.wait_for_selector("#logs div")
    assert d.csp_violations() == []


def test_a_perpetual_shows_its_side_leverage_liquidation_and_marks_a_liquidation(
        dashboard: Callable[..., Dashboard], data_dir: Path, tmp_path: Path, r: redis.Redis, ns: str) -> None:
    from backend.tests.conftest import FAST_CONFIG  # noqa: PLC0415
    from backend.tests.integration.helpers import events, journal_entries  # noqa: PLC0415

    config = tmp_path / "perp.yaml"  # 20x, no stop, a wilder feed: liquidated within a second or two
    config.write_text(FAST_CONFIG.replace("annual_volatility: 3.0", "annual_volatility: 8.0")
                      + "  market: perpetual\n  leverage: 20\n  liquidation_buffer_atr: 0\n"
                      "  strategy: {name: sma_crossover, fast: 2, slow: 5, allow_short: true}\n")
    d = dashboard(["LIQUSDT"], "--config", str(config))
    d.open()
    d.page.wait_for_function("() => /(long|short) 20x/.test(document.querySelector("
                             "'#fleet tr[data-symbol=LIQUSDT] td:nth-child(9)')?.textContent || '')", timeout=20000)
    wait_for(lambda: any(e.get("reason") == "liquidation" for e in journal_entries(data_dir, "LIQUSDT")), 60,
             interval=0.2, what="a liquidation")
    wait_for(lambda: events(r, ns, "liquidated", "LIQUSDT"), 10, what="the manager's liquidation alert")
    d.open("/symbol/LIQUSDT")
    d.page.wait_for_selector("#fills table")
    d.page.wait_for_function("() => document.querySelector('main .cards')?.textContent.includes('20x isolated')")
    cards = d.page.inner_text("main .cards")
    assert "liquidation price" in cards and "margin" in cards and "funding" in cards and "side" in cards
    assert "liquidation" in d.page.inner_text("#fills")
    assert "liquidated" in d.page.inner_text("#events")  # the manager's alert, as an event
    d.page.wait_for_selector("#candles canvas")
    d.shot("symbol_perpetual")
    assert d.csp_violations() == []


def test_everything_from_redis_and_logs_renders_as_text(dashboard: Callable[..., Dashboard], r: redis.Redis,
                                                        ns: str, data_dir: Path) -> None:
    d = dashboard(["BTCUSDT"])
    evil = "EVIL<b>1</b>"  # not a valid symbol for the API, but Redis is not the API: the page must cope
    r.sadd(f"{ns}engines", evil)
    r.hset(f"{ns}engine:{evil}", mapping={"status": "failed", "last_error": XSS, "strategy": XSS, "restarts": 5})
    r.xadd(f"{ns}events", {"type": "crashed", "symbol": "BTCUSDT", "reason": XSS, "ts": f"{time.time():.3f}"})
    log = sorted((data_dir / "logs").glob("engine-BTCUSDT-*.jsonl"))[-1]
    with log.open("a") as fh:
        fh.write(json.dumps({"ts": "now", "level": "ERROR", "msg": XSS}) + "\n")
    d.open()
    d.page.wait_for_selector(f'#fleet tr[data-symbol="{evil}"]')
    row = d.page.locator(f'#fleet tr[data-symbol="{evil}"]')
    assert evil in row.inner_text() and XSS in row.inner_text()
    assert row.locator("img, script, b").count() == 0
    d.open("/symbol/BTCUSDT")
    d.page.wait_for_selector("#logs div")
    assert XSS in d.page.inner_text("#logs") and XSS in d.page.inner_text("#events")
    assert d.page.locator("main img, main script").count() == 0
    d.shot("xss_as_text")
    assert d.page.evaluate("window.__xss") is None
    assert d.csp_violations() == []


def test_a_backtest_started_from_the_page_finishes_and_draws_its_chart(
        dashboard: Callable[..., Dashboard], api_token: str) -> None:
    d = dashboard(["BTCUSDT"], workers=1)
    d.open("/backtests")
    d.page.wait_for_selector("#backtest-form")
    d.page.click("#run-backtest")
    assert "refused" in d.toast("refused")  # no token yet
    d.set_token(api_token)
    d.page.fill("input[name=symbols]", "BTCUSDT,ETHUSDT")
    d.page.fill("input[name=start]", "2026-01-01")
    d.page.fill("input[name=end]", "2026-01-08")
    d.page.select_option("select[name=strategy]", "trend_htf.levi.yaml")
    d.page.click("#run-backtest")
    d.page.wait_for_selector("#backtest-result [data-chart=equity] canvas", timeout=90_000)
    assert d.page.locator("#backtest-result [data-chart=equity]").count() == 2
    text = d.page.inner_text("#backtest-result")
    assert "trend_htf.levi.yaml on BTCUSDT, ETHUSDT" in text and "buy and hold" in text and "Sharpe" in text
    time.sleep(0.5)
    d.shot("backtest")
    first = d.page.url.rsplit("/", 1)[-1]
    d.open("/backtests")  # a second run, then both side by side
    d.page.wait_for_selector("#backtest-form")
    d.page.fill("input[name=start]", "2026-01-01")
    d.page.fill("input[name=end]", "2026-01-08")
    d.page.click("#run-backtest")
    d.page.wait_for_function("([first]) => location.hash.startsWith('#/backtests/') && !location.hash.endsWith(first)",
                             arg=[first], timeout=90_000)
    d.page.wait_for_selector(f'#past-runs input[data-run="{first}"]')
    second = d.page.url.rsplit("/", 1)[-1]
    d.page.check(f'#past-runs input[data-run="{first}"]')
    d.page.check(f'#past-runs input[data-run="{second}"]')
    d.page.click("#compare")
    d.page.wait_for_selector("#compare-chart canvas")
    time.sleep(0.5)
    d.shot("backtest_compare")
    bad = d.page
    bad.goto(d.url + "/#/backtests")
    bad.wait_for_selector("#backtest-form")
    bad.fill("input[name=end]", "2000-01-01")
    bad.click("#run-backtest")
    assert "end:" in d.toast("end:")
    assert d.csp_violations() == []


def test_parity_panel_says_when_engine_and_backtester_agree(dashboard: Callable[..., Dashboard], api_token: str,
                                                           data_dir: Path) -> None:
    from backend.tests.integration.helpers import fills

    d = dashboard(["BTCUSDT"], workers=1)
    wait_for(lambda: len(fills(data_dir, "BTCUSDT")) >= 2, 40, what="two fills")
    d.open("/parity/BTCUSDT")
    d.set_token(api_token)
    d.page.click("#run-parity")
    d.page.wait_for_selector("#parity-verdict", timeout=90_000)
    assert d.page.inner_text("#parity-verdict").startswith("No differences")
    d.shot("parity")
    assert d.csp_violations() == []


def test_a_webhook_engine_shows_the_signals_it_was_sent(dashboard: Callable[..., Dashboard], tmp_path: Path,
                                                        data_dir: Path) -> None:
    from backend.src.core.signals import sign  # noqa: PLC0415
    from backend.tests.conftest import FAST_CONFIG  # noqa: PLC0415
    from backend.tests.integration.helpers import journal_entries  # noqa: PLC0415

    secret = "hook-" + os.urandom(8).hex()
    config = tmp_path / "hook.yaml"
    config.write_text(FAST_CONFIG.replace("{name: sma_crossover, fast: 2, slow: 5}", "{name: webhook}"))
    d = dashboard(["WHKUSDT"], "--config", str(config), signal_secrets=f"bot=hmac:{secret}")
    for i, target in enumerate((1.0, 0.5)):
        raw = json.dumps({"target": target, "ts": time.time(), "id": f"s{i}", "reason": XSS}).encode()
        res = httpx.post(f"{d.url}/signals/WHKUSDT", content=raw,
                         headers={"X-LeviBot-Source": "bot", "X-LeviBot-Signature": sign(secret, raw)})
        assert res.status_code == 202, res.text
    wait_for(lambda: len([e for e in journal_entries(data_dir, "WHKUSDT") if e["type"] == "webhook_signal"]) == 2,
             20, what="both signals journaled")
    d.open("/symbol/WHKUSDT")
    d.page.wait_for_selector("#signals table")
    rows = d.page.locator("#signals tbody tr")
    assert rows.count() == 2 and rows.nth(0).inner_text().split("\t")[1:4] == ["bot", "s1", "0.50"]
    assert XSS in d.page.inner_text("#signals") and d.page.evaluate("window.__xss") is None
    d.shot("symbol_signals")
    assert d.csp_violations() == []


def test_parity_page_attributes_a_planted_fee_change(dashboard: Callable[..., Dashboard], api_token: str,
                                                     data_dir: Path, engine_config: Path, r: redis.Redis,
                                                     ns: str) -> None:
    """A fee change mid-run (hot-reloaded): the backtester replays every session with today's fees, so the
    fills made before the change differ by their fees — the page names the cause and its share."""
    from backend.tests.integration.helpers import fills, state

    d = dashboard(["BTCUSDT"], workers=1)
    wait_for(lambda: len(fills(data_dir, "BTCUSDT")) >= 2, 40, what="two fills")
    before = state(r, ns, "BTCUSDT").get("config_version")
    time.sleep(1.1)  # mtime granularity
    engine_config.write_text(engine_config.read_text() + "  fee_bps: 30\n")
    wait_for(lambda: state(r, ns, "BTCUSDT").get("config_version") != before, 20, what="the new fees applied")
    n = len(fills(data_dir, "BTCUSDT"))
    wait_for(lambda: len(fills(data_dir, "BTCUSDT")) >= n + 2, 40, what="fills under the new fees")
    d.open("/parity/BTCUSDT")
    d.set_token(api_token)
    d.page.click("#run-parity")
    d.page.wait_for_selector("#parity-attribution", timeout=90_000)
    text = d.page.inner_text("#parity-attribution")
    assert "config change(s)" in d.page.inner_text("#parity-gap") and "1 config change" in text, text
    rows = d.page.locator("#parity-attribution table").first.locator("tbody tr")
    causes = [rows.nth(i).inner_text().split("\t")[0] for i in range(rows.count())]
    assert "fees" in causes, text
    d.shot("parity_attribution")
    assert d.csp_violations() == []
