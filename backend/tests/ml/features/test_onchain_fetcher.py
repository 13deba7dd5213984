"""On-chain metrics over real HTTP: the Dune API stand-in (execute, poll, results, errors)
and funding through the real ccxt client against the Binance stand-in."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis
from pydantic import SecretStr

from backend.ml.features.onchain_fetcher import OnchainFetcher, ccxt_funding
from backend.src.core.settings import Settings
from backend.tests.fakes.binance_server import BinanceServer, generated
from backend.tests.fakes.llm_servers import DuneServer, NansenServer


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def dune() -> Iterator[DuneServer]:
    server = DuneServer(pending_polls=2)
    yield server
    server.close()


def fetcher(settings: Settings, r: redis.Redis, dune: DuneServer, clock: Clock, **extra: object) -> OnchainFetcher:
    s = settings.model_copy(update={"dune_api_key": SecretStr("dune-key"), "dune_base_url": dune.url,
                                    "dune_poll_s": 0.01, **extra})
    return OnchainFetcher(s, r, http=httpx.Client(), funding=lambda sym: 0.0001, clock=clock)


def test_dune_execute_poll_results_and_typed_metrics(settings: Settings, r: redis.Redis, dune: DuneServer) -> None:
    m = fetcher(settings, r, dune, Clock()).get("BTCUSDT")
    assert m.active_addresses_24h == 912345 and isinstance(m.active_addresses_24h, int)
    assert m.exchange_inflow_usd == 1.25e9 and m.exchange_outflow_usd == 1.40e9
    assert m.whale_transactions_count == 37 and m.funding_rate == 0.0001
    assert not m.stale and m.age_s == 0 and m.net_exchange_flow_usd == pytest.approx(-1.5e8)
    paths = [q["path"] for q in dune.requests]
    assert paths[0] == "/api/v1/sql/execute" and "'BTC'" in dune.requests[0]["body"]["sql"]
    assert paths[1:4] == [paths[1]] * 3 and paths[1].endswith("/status") and paths[-1].endswith("/results")


def test_saved_query_by_id(settings: Settings, r: redis.Redis, dune: DuneServer) -> None:
    fetcher(settings, r, dune, Clock(), dune_query_id=3493826).get("ETHUSDT")
    assert dune.requests[0]["path"] == "/api/v1/query/3493826/execute"
    assert dune.requests[0]["body"]["query_parameters"] == {"asset": "ETH"}


def test_cached_for_five_minutes(settings: Settings, r: redis.Redis, dune: DuneServer) -> None:
    clock = Clock()
    f = fetcher(settings, r, dune, clock)
    f.get("BTCUSDT")
    n = len(dune.requests)
    clock.t += 299
    assert f.get("BTCUSDT").age_s == 299 and len(dune.requests) == n
    clock.t += 2
    assert f.get("BTCUSDT").age_s == 0 and len(dune.requests) > n


@pytest.mark.parametrize("mode", ["429", "500", "503", "malformed", "fail"])
def test_api_down_serves_the_last_value_marked_stale(mode: str, settings: Settings, r: redis.Redis,
                                                     dune: DuneServer) -> None:
    clock = Clock()
    f = fetcher(settings, r, dune, clock)
    f.get("BTCUSDT")
    clock.t += 600
    dune.plan.extend([mode] * 10)
    m = f.get("BTCUSDT")
    assert m.stale and m.errors and m.active_addresses_24h == 912345 and m.age_s == 600


def test_bad_key_and_bad_rows(settings: Settings, r: redis.Redis, dune: DuneServer) -> None:
    m = fetcher(settings, r, dune, Clock(), dune_api_key=SecretStr("wrong")).get("BTCUSDT")
    assert m.stale and "HTTP 401" in m.errors[0] and m.active_addresses_24h is None
    dune.rows = [{"active_addresses_24h": "lots"}]
    m = fetcher(settings, r, dune, Clock()).get("SOLUSDT")
    assert m.stale and "active_addresses_24h is not a number" in m.errors[0]


def test_timeout(settings: Settings, r: redis.Redis, dune: DuneServer) -> None:
    m = fetcher(settings, r, dune, Clock(), dune_max_wait_s=0.05, dune_poll_s=0.1).get("BTCUSDT")
    assert m.stale and "still QUERY_STATE_EXECUTING" in m.errors[0]


def test_funding_through_ccxt(settings: Settings, r: redis.Redis) -> None:
    binance = BinanceServer({"BTCUSDT": generated(1000)}, timeframe="1s")
    try:
        s = settings.model_copy(update={"funding_exchange": "binance", "exchange_base_url": binance.url,
                                        "exchange_timeout_s": 1.0})
        funding = ccxt_funding(s)
        assert funding is not None
        f = OnchainFetcher(s, r, funding=funding)
        m = f.get("BTCUSDT")
        assert m.funding_rate == 0.0001 and not m.stale and m.active_addresses_24h is None  # no Dune key
        binance.down = True
        m = f.get("BTCUSDT", force=True)
        assert m.stale and m.funding_rate == 0.0001
        assert f.get("DOGEUSDT").errors  # not a perpetual there: an error line, not a crash
    finally:
        binance.close()


WBTC = "0x2260fac5e5542a773aa44fbcfedf7c193bc2c599"


@pytest.fixture
def nansen() -> Iterator[NansenServer]:
    server = NansenServer()
    server.flows[WBTC] = {"smart_trader_net_flow_usd": 2.5e6, "exchange_net_flow_usd": -4.0e7,
                          "whale_net_flow_usd": 1.2e7}
    yield server
    server.close()


def nansen_fetcher(settings: Settings, r: redis.Redis, nansen: NansenServer, clock: Clock,
                   **extra: object) -> OnchainFetcher:
    s = settings.model_copy(update={"nansen_api_key": SecretStr("nansen-key"), "nansen_base_url": nansen.url,
                                    "nansen_timeout_s": 1.0, **extra})
    return OnchainFetcher(s, r, http=httpx.Client(), clock=clock)


def test_nansen_flows_in_the_documented_wire_format(settings: Settings, r: redis.Redis,
                                                    nansen: NansenServer) -> None:
    clock = Clock()
    m = nansen_fetcher(settings, r, nansen, clock).get("BTCUSDT")
    assert not m.stale and m.errors == ()
    assert (m.smart_money_net_flow_usd, m.nansen_exchange_net_flow_usd, m.whale_net_flow_usd) == (2.5e6, -4.0e7, 1.2e7)
    (call,) = nansen.calls("/tgm/flow-intelligence")
    assert call["headers"]["apiKey"] == "nansen-key"
    assert call["body"] == {"chain": "ethereum", "token_address": WBTC, "timeframe": "1d"}
    clock.t += 120  # cached: the same five minutes as Dune's
    assert nansen_fetcher(settings, r, nansen, clock).get("BTCUSDT").age_s == 120 and len(nansen.requests) == 1


def test_nansen_tokens_from_settings_and_assets_without_one(settings: Settings, r: redis.Redis,
                                                            nansen: NansenServer) -> None:
    link = "0x514910771af9ca656af840dff83e8264ecf986ca"
    nansen.flows[link] = {"smart_trader_net_flow_usd": -1.0, "exchange_net_flow_usd": 2.0, "whale_net_flow_usd": 3.0}
    tokens = {"link": f"ethereum:{link}"}
    f = nansen_fetcher(settings, r, nansen, Clock(), nansen_tokens=Settings(nansen_tokens=tokens).nansen_tokens)
    assert f.get("LINKUSDT").smart_money_net_flow_usd == -1.0
    m = f.get("DOGEUSDT")  # no token known: nothing asked, nothing stale
    assert m.smart_money_net_flow_usd is None and m.errors == () and len(nansen.requests) == 1
    with pytest.raises(ValueError, match='LINK: expected "chain:token address"'):
        Settings(nansen_tokens={"LINK": "0x514910771af9ca656af840dff83e8264ecf986ca"})


@pytest.mark.parametrize("mode", ["429", "500", "503", "malformed", "wrong_shape", "slow"])
def test_nansen_down_serves_the_last_value_marked_stale(mode: str, settings: Settings, r: redis.Redis,
                                                        nansen: NansenServer) -> None:
    clock = Clock()
    f = nansen_fetcher(settings, r, nansen, clock)
    f.get("BTCUSDT")
    clock.t += 600
    nansen.plan.extend([mode] * 3)
    m = f.get("BTCUSDT")
    assert m.stale and m.errors[0].startswith("nansen:") and m.smart_money_net_flow_usd == 2.5e6 and m.age_s == 600
    if mode == "429":
        assert "rate limited (429, retry after 2 s)" in m.errors[0]


def test_nansen_bad_key_unknown_token_and_key_in_no_log(settings: Settings, r: redis.Redis, nansen: NansenServer,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    m = nansen_fetcher(settings, r, nansen, Clock(), nansen_api_key=SecretStr("wrong")).get("BTCUSDT")
    assert m.stale and "HTTP 401" in m.errors[0] and m.smart_money_net_flow_usd is None
    nansen.flows.clear()
    m = nansen_fetcher(settings, r, nansen, Clock()).get("ETHUSDT")
    assert m.stale and "no flow data" in m.errors[0]
    assert "nansen-key" not in caplog.text and "wrong" not in caplog.text
