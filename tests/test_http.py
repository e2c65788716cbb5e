"""The HTTP contract of zeroprobe, through aiohttp's test client against a simulated replica set.

Expectations come from ARCHITECTURE.md ("The Zero Problem document", "Health endpoints").
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

from schemas.zero_problem import ZeroProblemDocument
from tests.conftest import EngineFactory, SpecFactory
from zeroprobe.engine.core import Engine
from zeroprobe.simulators.mongo import SimulatedReplicaSet
from zeroprobe.web.app import create_app

SERVICE_ID = "test.mongo.lag"
KiB = 1024
BODY_LIMIT = 64 * KiB

Client = TestClient[web.Request, web.Application]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture(scope="module")
def shared_set() -> Iterator[SimulatedReplicaSet]:
    """A replica set that tests only read from (stopping a set costs about 1 s)."""
    rs = SimulatedReplicaSet(lag_fn=lambda member, elapsed_s: 0.0).start()
    try:
        yield rs
    finally:
        rs.stop()


async def engine_of(
    rs: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> AsyncIterator[Engine]:
    """One replication-lag probe of `rs`; nothing scheduled to re-run during a test."""
    eng = make_engine(
        [make_spec(service_id=SERVICE_ID, interval="60s", timeout="2s")],
        {"ZEROPROBE_CONNECTION_RS": rs.uri},
    )
    try:
        yield eng
    finally:
        await eng.stop()


@pytest.fixture
async def engine(
    shared_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> AsyncIterator[Engine]:
    """An engine probing the shared, healthy replica set."""
    async for eng in engine_of(shared_set, make_spec, make_engine):
        yield eng


@pytest.fixture
async def own_engine(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> AsyncIterator[Engine]:
    """An engine probing this test's own replica set (`replica_set`), which the test may change."""
    async for eng in engine_of(replica_set, make_spec, make_engine):
        yield eng


async def client_for(
    aiohttp_client: AiohttpClient, engine: Engine, *, start_engine: bool = False
) -> Client:
    return await aiohttp_client(create_app(engine, start_engine=start_engine))


async def json_body(response: ClientResponse) -> Any:
    """The body as JSON, after checking that the response says it is JSON."""
    assert response.content_type == "application/json", response.headers
    return json.loads(await response.read())


async def assert_json_error(response: ClientResponse, status: int) -> dict[str, Any]:
    assert response.status == status
    body = await json_body(response)
    assert isinstance(body, dict)
    assert body, "an error body must say something"
    return body


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0, step_s: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(step_s)


def stop_all_members(replica_set: SimulatedReplicaSet) -> None:
    replica_set.stop()


def restart_all_members(replica_set: SimulatedReplicaSet) -> None:
    for index in range(len(replica_set.members)):
        replica_set.restart_member(index)


async def recover(engine: Engine, replica_set: SimulatedReplicaSet) -> None:
    """Bring the set back and wait for a measured run, so the engine stops against a healthy set.

    Stopping the engine while every member is down sometimes leaves a socket of PyMongo's
    server monitors unclosed, which filterwarnings=error turns into a failure of some later
    test. That is about shutting down, not about what these tests check.
    """
    restart_all_members(replica_set)

    async def measured() -> bool:
        return (await engine.run_once(SERVICE_ID)).grade.value == "GREEN"

    await eventually(measured)


# The Zero Problem document --------------------------------------------------------------------


async def test_document_has_the_exact_zero_problem_shape(
    aiohttp_client: AiohttpClient, own_engine: Engine, replica_set: SimulatedReplicaSet
) -> None:
    replica_set.set_lag_ms(1, 6120)
    before = now_ms()
    await own_engine.run_once(SERVICE_ID)
    after = now_ms()
    client = await client_for(aiohttp_client, own_engine)

    for method in ("PUT", "GET"):
        response = await client.request(method, f"/{SERVICE_ID}")

        assert response.status == 200, method
        assert response.content_type == "application/json"
        raw = await response.read()
        ZeroProblemDocument.model_validate_json(raw)
        document = json.loads(raw)
        assert list(document) == [SERVICE_ID]
        status = document[SERVICE_ID]
        assert list(status) == ["status", "timestamp", "messages"]
        assert status["status"] in ("GREEN", "YELLOW", "RED")
        # 6120 ms is in the YELLOW band [5000, 30000).
        assert status["status"] == "YELLOW"
        timestamp = status["timestamp"]
        assert type(timestamp) is int
        assert before <= timestamp <= after, "the epoch ms at which the result was collected"
        messages = status["messages"]
        assert isinstance(messages, list)
        assert len(messages) == 1
        message = messages[0]
        assert list(message) == ["statusCode", "statusBody", "actionCode", "actionBody"]
        assert message["statusCode"] == ""
        assert message["statusBody"] == SERVICE_ID
        assert message["actionCode"] == ""
        lines = message["actionBody"].split("\n")
        assert all(line.startswith("- ") for line in lines), lines
        # One line per member, each naming its member, then the oplog window's.
        *members, oplog = lines
        assert len(members) == len(replica_set.hosts)
        for host in replica_set.hosts:
            assert sum(host in line for line in members) == 1, (host, lines)
        assert oplog.startswith(f"- oplog window 26h 14m on {replica_set.hosts[0]}; "), lines
        lagging = next(line for line in members if replica_set.hosts[1] in line)
        lag = re.search(r"(\d+)ms", lagging)
        assert lag is not None, lagging
        assert abs(int(lag.group(1)) - 6120) <= 1, lagging


async def test_document_carries_collection_time_not_request_time(
    aiohttp_client: AiohttpClient, engine: Engine
) -> None:
    await engine.run_once(SERVICE_ID)
    collected_by = now_ms()
    client = await client_for(aiohttp_client, engine)
    await asyncio.sleep(0.05)

    first = await client.put(f"/{SERVICE_ID}")
    first_raw = await first.read()
    await asyncio.sleep(0.05)
    second = await client.put(f"/{SERVICE_ID}")
    second_raw = await second.read()
    by_get = await client.get(f"/{SERVICE_ID}")
    get_raw = await by_get.read()

    assert first.status == second.status == by_get.status == 200
    assert first_raw == second_raw == get_raw
    assert json.loads(first_raw)[SERVICE_ID]["timestamp"] <= collected_by


async def test_document_follows_the_newest_run(
    aiohttp_client: AiohttpClient, own_engine: Engine, replica_set: SimulatedReplicaSet
) -> None:
    client = await client_for(aiohttp_client, own_engine)
    await own_engine.run_once(SERVICE_ID)
    green = json.loads(await (await client.put(f"/{SERVICE_ID}")).read())
    replica_set.set_lag_ms(2, 31_000)
    await own_engine.run_once(SERVICE_ID)
    red = json.loads(await (await client.put(f"/{SERVICE_ID}")).read())

    assert green[SERVICE_ID]["status"] == "GREEN"
    assert red[SERVICE_ID]["status"] == "RED"
    assert red[SERVICE_ID]["timestamp"] >= green[SERVICE_ID]["timestamp"]


async def test_unknown_service_id_is_404_json(
    aiohttp_client: AiohttpClient, engine: Engine
) -> None:
    await engine.run_once(SERVICE_ID)
    client = await client_for(aiohttp_client, engine)
    for method in ("PUT", "GET"):
        response = await client.request(method, "/no.such.service")
        body = await assert_json_error(response, 404)
        assert "no.such.service" in json.dumps(body)


@pytest.mark.parametrize("method", ["PUT", "GET"])
async def test_no_result_yet_is_503_json_with_retry_after(
    aiohttp_client: AiohttpClient, engine: Engine, method: str
) -> None:
    client = await client_for(aiohttp_client, engine, start_engine=False)

    response = await client.request(method, f"/{SERVICE_ID}")

    await assert_json_error(response, 503)
    retry_after = response.headers.get("Retry-After")
    assert retry_after is not None
    assert retry_after.isdigit(), retry_after
    assert int(retry_after) >= 1


# Request bodies ---------------------------------------------------------------------------------


async def chunks(total: int, size: int = 16 * KiB) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b"x" * min(size, total - sent)
        sent += len(chunk)
        yield chunk


async def test_put_body_up_to_64_kib_is_read_and_ignored(
    aiohttp_client: AiohttpClient, engine: Engine
) -> None:
    await engine.run_once(SERVICE_ID)
    client = await client_for(aiohttp_client, engine)
    without_body = await (await client.put(f"/{SERVICE_ID}")).read()

    small = await client.put(f"/{SERVICE_ID}", data=b'{"ping": true}')
    at_limit = await client.put(f"/{SERVICE_ID}", data=b"x" * BODY_LIMIT)
    chunked = await client.put(f"/{SERVICE_ID}", data=chunks(BODY_LIMIT))

    assert chunked.request_info.headers.get("Transfer-Encoding") == "chunked"
    for response in (small, at_limit, chunked):
        assert response.status == 200
        assert await response.read() == without_body


async def test_put_body_over_64_kib_is_413_json(
    aiohttp_client: AiohttpClient, engine: Engine
) -> None:
    await engine.run_once(SERVICE_ID)
    client = await client_for(aiohttp_client, engine)

    response = await client.put(f"/{SERVICE_ID}", data=b"x" * (BODY_LIMIT + 1))

    assert response.request_info.headers.get("Content-Length") == str(BODY_LIMIT + 1)
    await assert_json_error(response, 413)


async def test_chunked_put_body_over_64_kib_is_413_json(
    aiohttp_client: AiohttpClient, engine: Engine
) -> None:
    await engine.run_once(SERVICE_ID)
    client = await client_for(aiohttp_client, engine)

    just_over = await client.put(f"/{SERVICE_ID}", data=chunks(BODY_LIMIT + 1))
    await assert_json_error(just_over, 413)
    assert just_over.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in just_over.request_info.headers

    far_over = await client.put(f"/{SERVICE_ID}", data=chunks(4 * BODY_LIMIT))
    await assert_json_error(far_over, 413)


# Methods and routes -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_other_methods_are_405_json_with_allow(
    aiohttp_client: AiohttpClient, engine: Engine, method: str
) -> None:
    await engine.run_once(SERVICE_ID)
    client = await client_for(aiohttp_client, engine)

    response = await client.request(method, f"/{SERVICE_ID}")

    await assert_json_error(response, 405)
    allowed = {m.strip().upper() for m in response.headers.get("Allow", "").split(",")}
    assert {"GET", "PUT"} <= allowed
    assert method not in allowed


@pytest.mark.parametrize("path", ["/a/b", "/test.mongo.lag/extra", "/a/b/c"])
async def test_unknown_route_is_404_json(
    aiohttp_client: AiohttpClient, engine: Engine, path: str
) -> None:
    await engine.run_once(SERVICE_ID)
    client = await client_for(aiohttp_client, engine)

    response = await client.get(path)

    await assert_json_error(response, 404)


async def test_results_api_lists_the_probes_as_json(
    aiohttp_client: AiohttpClient,
    shared_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
) -> None:
    ids = ["test.index.a", "test.index.b"]
    eng = make_engine(
        [make_spec(service_id=i, interval="60s") for i in ids],
        {"ZEROPROBE_CONNECTION_RS": shared_set.uri},
    )
    try:
        await eng.run_once(ids[0])
        client = await client_for(aiohttp_client, eng)
        # GET / is the HTML status page; the machine-readable listing is the JSON API.
        response = await client.get("/api/v1/results")
        assert response.status == 200
        body = await json_body(response)
    finally:
        await eng.stop()

    strings: list[str] = []

    def collect(value: object) -> None:
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(body)
    for service_id in ids:
        assert service_id in strings, (service_id, body)


# /liveness, /livez, /readyz ---------------------------------------------------------------------


def check_of(body: Any, name: str) -> dict[str, Any]:
    """The entry of `body`'s list of checks named `name`."""
    assert isinstance(body, dict)
    checks = body.get("checks")
    assert isinstance(checks, list), body
    found = [c for c in checks if isinstance(c, dict) and c.get("name") == name]
    assert len(found) == 1, body
    return found[0]


async def test_liveness_follows_the_target_down_and_back(
    aiohttp_client: AiohttpClient, own_engine: Engine, replica_set: SimulatedReplicaSet
) -> None:
    client = await client_for(aiohttp_client, own_engine)

    await own_engine.run_once(SERVICE_ID)
    up = await client.get("/liveness")
    assert up.status == 200, await up.text()
    assert check_of(await json_body(up), SERVICE_ID)["ok"] is True

    stop_all_members(replica_set)
    outage = await own_engine.run_once(SERVICE_ID)
    down = await client.get("/liveness")
    assert down.status == 503, await down.text()
    failing = check_of(await json_body(down), SERVICE_ID)
    assert failing["ok"] is False
    assert isinstance(failing.get("reason"), str)
    assert failing["reason"].strip()
    assert outage.grade.value == "RED"

    restart_all_members(replica_set)

    async def live_again() -> bool:
        await own_engine.run_once(SERVICE_ID)
        return (await client.get("/liveness")).status == 200

    await eventually(live_again)
    back = await client.get("/liveness")
    assert check_of(await json_body(back), SERVICE_ID)["ok"] is True


async def test_liveness_is_503_before_any_result(
    aiohttp_client: AiohttpClient, engine: Engine
) -> None:
    client = await client_for(aiohttp_client, engine)

    response = await client.get("/liveness")

    assert response.status == 503
    check = check_of(await json_body(response), SERVICE_ID)
    assert check["ok"] is False
    assert check.get("reason")


async def test_livez_stays_200_through_a_target_outage(
    aiohttp_client: AiohttpClient,
    replica_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
) -> None:
    eng = make_engine(
        [make_spec(service_id=SERVICE_ID, interval="1s", timeout="0.5s")],
        {"ZEROPROBE_CONNECTION_RS": replica_set.uri},
    )
    try:
        client = await client_for(aiohttp_client, eng, start_engine=True)

        async def status_of(path: str) -> int:
            return (await client.get(path)).status

        await eventually(lambda: _is(status_of("/liveness"), 200))
        livez = await client.get("/livez")
        assert livez.status == 200
        await json_body(livez)

        stop_all_members(replica_set)
        await eventually(lambda: _is(status_of("/liveness"), 503))

        # Scheduled runs keep failing for a while; the process stays healthy all along.
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            livez = await client.get("/livez")
            assert livez.status == 200, await livez.text()
            await json_body(livez)
            await asyncio.sleep(0.25)
        assert await status_of("/readyz") == 200
        document = json.loads(await (await client.put(f"/{SERVICE_ID}")).read())
        assert document[SERVICE_ID]["status"] == "RED"

        # Back again, so the engine stops against a reachable set (see `recover`).
        restart_all_members(replica_set)
        await eventually(lambda: _is(status_of("/liveness"), 200))
        assert await status_of("/livez") == 200
    finally:
        await eng.stop()


async def _is(status: Awaitable[int], expected: int) -> bool:
    return await status == expected


async def test_livez_fails_without_a_running_scheduler(
    aiohttp_client: AiohttpClient, engine: Engine
) -> None:
    await engine.run_once(SERVICE_ID)
    client = await client_for(aiohttp_client, engine, start_engine=False)

    response = await client.get("/livez")

    assert response.status == 503
    await json_body(response)


async def test_readyz_is_503_until_the_first_round_finished(
    aiohttp_client: AiohttpClient,
    shared_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
) -> None:
    # Two probes whose first runs are spread over 2 s: the second one starts about 1 s in.
    ids = ["test.ready.a", "test.ready.b"]
    eng = make_engine(
        [make_spec(service_id=i, interval="60s") for i in ids],
        {"ZEROPROBE_CONNECTION_RS": shared_set.uri},
        first_run_spread_s=2.0,
    )
    try:
        client = await client_for(aiohttp_client, eng, start_engine=True)

        early = await client.get("/readyz")
        assert early.status == 503
        await json_body(early)
        pending = await client.put(f"/{ids[1]}")
        await assert_json_error(pending, 503)
        retry_after = pending.headers.get("Retry-After", "")
        assert retry_after.isdigit()
        assert int(retry_after) >= 1

        async def ready() -> bool:
            return (await client.get("/readyz")).status == 200

        await eventually(ready, timeout_s=10)
        for service_id in ids:
            assert (await client.put(f"/{service_id}")).status == 200
    finally:
        await eng.stop()


async def test_readyz_is_503_when_nothing_ran(
    aiohttp_client: AiohttpClient, engine: Engine
) -> None:
    client = await client_for(aiohttp_client, engine, start_engine=False)

    response = await client.get("/readyz")

    assert response.status == 503
    await json_body(response)


# /metrics ---------------------------------------------------------------------------------------


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value_of(parsed: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    found = [
        value
        for sample_name, sample_labels, value in parsed
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, [p for p in parsed if p[0] == name])
    return found[0]


async def test_metrics_expose_probe_results_and_member_lags(
    aiohttp_client: AiohttpClient, own_engine: Engine, replica_set: SimulatedReplicaSet
) -> None:
    replica_set.set_lag_ms(1, 6120)
    result = await own_engine.run_once(SERVICE_ID)
    client = await client_for(aiohttp_client, own_engine)

    response = await client.get("/metrics")

    assert response.status == 200
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("text/plain")
    assert "version=0.0.4" in content_type.replace(" ", "")
    text = await response.text()
    parsed = samples(text)
    for name in (
        "zeroprobe_probe_status",
        "zeroprobe_probe_duration_seconds",
        "zeroprobe_probe_runs_total",
        "zeroprobe_probe_last_success_timestamp_seconds",
        "zeroprobe_mongo_replication_lag_seconds",
    ):
        assert name in text
    assert all(name.startswith("zeroprobe_") for name, _, _ in parsed)

    value_of(parsed, "zeroprobe_probe_status", service_id=SERVICE_ID)
    duration = value_of(parsed, "zeroprobe_probe_duration_seconds", service_id=SERVICE_ID)
    assert 0 < duration < 2
    runs = value_of(parsed, "zeroprobe_probe_runs_total", service_id=SERVICE_ID, outcome="success")
    assert runs == 1
    last_success = value_of(
        parsed, "zeroprobe_probe_last_success_timestamp_seconds", service_id=SERVICE_ID
    )
    assert last_success == pytest.approx(result.collected_at_ms / 1000, abs=0.002)

    hosts = replica_set.hosts
    lag = "zeroprobe_mongo_replication_lag_seconds"
    assert value_of(parsed, lag, service_id=SERVICE_ID, member=hosts[1]) == pytest.approx(
        6.12, abs=0.002
    )
    assert value_of(parsed, lag, service_id=SERVICE_ID, member=hosts[0]) == 0
    assert value_of(parsed, lag, service_id=SERVICE_ID, member=hosts[2]) == pytest.approx(
        0, abs=0.002
    )


async def test_metrics_count_runs_by_outcome_and_status_changes(
    aiohttp_client: AiohttpClient, own_engine: Engine, replica_set: SimulatedReplicaSet
) -> None:
    client = await client_for(aiohttp_client, own_engine)
    await own_engine.run_once(SERVICE_ID)
    healthy = samples(await (await client.get("/metrics")).text())

    stop_all_members(replica_set)
    await own_engine.run_once(SERVICE_ID)
    failed = samples(await (await client.get("/metrics")).text())

    runs = {
        labels["outcome"]: value
        for name, labels, value in failed
        if name == "zeroprobe_probe_runs_total" and labels.get("service_id") == SERVICE_ID
    }
    assert runs.get("success") == 1
    assert sum(v for k, v in runs.items() if k != "success") == 1, runs
    green = value_of(healthy, "zeroprobe_probe_status", service_id=SERVICE_ID)
    red = value_of(failed, "zeroprobe_probe_status", service_id=SERVICE_ID)
    assert green != red
    await recover(own_engine, replica_set)
