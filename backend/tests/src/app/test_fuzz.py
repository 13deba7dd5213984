"""Schemathesis fuzzes every operation of the OpenAPI schema over real HTTP: no 500, ever."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from backend.src.core.redis_launcher import EmbeddedRedis
from backend.src.core.redis_url import connect
from backend.tests.conftest import ApiServer, ManagerProc, fast_env
from backend.tests.integration.helpers import wait_running

TOKEN = "fuzz-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def live_api(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    ns = f"fuzz{uuid.uuid4().hex[:8]}:"
    data = tmp_path_factory.mktemp("fuzz") / "data"
    manager = ManagerProc(["--symbols", "BTCUSDT,ETHUSDT"],  # with its analytics store: /history is fuzzed too
                          fast_env(redis_server.url, ns, data, analytics_enabled="true"))
    wait_running(connect(redis_server.url), ns, ["BTCUSDT", "ETHUSDT"])
    server = ApiServer(fast_env(redis_server.url, ns, data, api_token=TOKEN))
    yield server
    server.stop()
    manager.stop()


def test_no_server_error_for_any_input(live_api: ApiServer) -> None:
    schema = schemathesis.openapi.from_url(live_api.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) == 31
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=live_api.url, headers=headers, checks=[not_a_server_error])

        fuzz()


def test_openapi_schema_is_valid(live_api: ApiServer) -> None:
    import httpx
    from openapi_spec_validator import validate

    spec = httpx.get(live_api.url + "/openapi.json").json()
    validate(spec)
    assert {"/engines/status", "/engines/{symbol}", "/health", "/metrics", "/config/reload"} <= set(spec["paths"])


NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]


@pytest.mark.parametrize("value", NON_FINITE)
def test_non_finite_numbers_are_a_422_on_every_operation_with_a_body(live_api: ApiServer, value: str) -> None:
    """Values hypothesis does not generate for a JSON schema (JSON has no NaN), sent raw."""
    import httpx

    spec = httpx.get(live_api.url + "/openapi.json").json()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with_body = [(path.replace("{symbol}", "BTCUSDT").replace("{action}", "restart"), method)
                 for path, ops in spec["paths"].items() for method, op in ops.items() if "requestBody" in op]
    assert with_body
    valid = {  # the rest of each body valid, so the non-finite number is the one error
        "/backtests": ('{"symbols": ["BTCUSDT"], "start": "2026-01-01", "end": "2026-01-02", ', "fee_bps"),
        "/replays": ('{"run_id": "0123456789abcdef", "symbol": "BTCUSDT", ', "speed"),
        "/models/promote": ('{"version": "ensemble_20260101_000000", ', "wait_s"),
    }
    for path, method in with_body:
        head, field = valid.get(path, ("{", "wait_s"))
        res = httpx.request(method, live_api.url + path, content=f'{head}"{field}": {value}}}', headers=headers)
        assert res.status_code == 422, (path, value, res.status_code, res.text)
        assert [d["loc"] for d in res.json()["detail"]] == [["body", field]], res.text
