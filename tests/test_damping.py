"""Flap damping (`confirm`): the pure decision, the runner's published result, and the wire.

The wire test runs the real scheduler and runner against a simulated replica set going
GREEN -> RED -> GREEN and reads what a monitoring system would: PUT /<id> and /metrics.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

from schemas.context_spec import MongoReplicationLagSpec
from schemas.grading import Grade, Line
from tests.conftest import EngineFactory, SpecFactory
from zeroprobe.engine.core import Engine
from zeroprobe.engine.damping import Verdict, damp
from zeroprobe.engine.store import Result, ResultStore
from zeroprobe.simulators.mongo import SimulatedReplicaSet
from zeroprobe.web.app import create_app

G, Y, R = Grade.GREEN, Grade.YELLOW, Grade.RED
SERVICE_ID = "test.mongo.damped"
Client = TestClient[web.Request, web.Application]


# The decision -------------------------------------------------------------------------------


def publish_sequence(measured: list[Grade], confirm: int) -> list[tuple[Grade, Grade | None, int]]:
    """(published, pending, agree) after each run, starting with no result at all."""
    out: list[tuple[Grade, Grade | None, int]] = []
    published: Grade | None = None
    pending: Grade | None = None
    agree = 0
    for grade in measured:
        verdict = damp(published, pending, agree, grade, confirm)
        published, pending, agree = verdict.published, verdict.pending, verdict.agree
        out.append((published, pending, agree))
    return out


def test_the_first_result_is_published_as_measured_whatever_confirm() -> None:
    assert damp(None, None, 0, R, 5) == Verdict(R)
    assert damp(None, None, 0, G, 1) == Verdict(G)


def test_confirm_one_publishes_every_change_at_once() -> None:
    runs = [G, R, G, Y, R]
    assert [p for p, _, _ in publish_sequence(runs, 1)] == runs
    assert all(pending is None for _, pending, _ in publish_sequence(runs, 1))


def test_a_change_waits_for_confirm_consecutive_runs() -> None:
    assert publish_sequence([G, R, R, R, G, G, G], 3) == [
        (G, None, 0),
        (G, R, 1),
        (G, R, 2),
        (R, None, 0),
        (R, G, 1),
        (R, G, 2),
        (G, None, 0),
    ]


def test_a_run_back_on_the_published_colour_cancels_the_pending_change() -> None:
    assert publish_sequence([G, R, G, R, R], 2) == [
        (G, None, 0),
        (G, R, 1),
        (G, None, 0),
        (G, R, 1),
        (R, None, 0),
    ]


def test_another_colour_restarts_the_count() -> None:
    # YELLOW then RED are two different changes: neither has two agreeing runs until the end.
    assert publish_sequence([G, Y, R, R], 2) == [
        (G, None, 0),
        (G, Y, 1),
        (G, R, 1),
        (R, None, 0),
    ]


def test_the_pending_line_says_what_waits_and_is_not_graded() -> None:
    note = Verdict(G, R, 1).note(3)
    assert note is not None
    assert note.text == "- change to RED pending: 1 of 3 runs agree (confirm: 3)"
    assert note.grade is None
    assert Verdict(G).note(3) is None


def test_a_result_keeps_the_published_colour_in_its_document() -> None:
    note = Verdict(G, R, 1).note(2)
    assert note is not None
    result = Result.build(
        service_id="svc",
        kind="k",
        lines=[Line("- Secondary b lag 60000ms", R), note],
        collected_at_ms=1_700_000_000_000,
        duration_s=0.01,
        outcome="success",
        reached_target=True,
        grade=G,
        pending=R,
        agree=1,
    )
    document = json.loads(result.document)["svc"]
    assert document["status"] == "GREEN"
    assert document["messages"][0]["actionBody"] == (
        "- Secondary b lag 60000ms\n- change to RED pending: 1 of 2 runs agree (confirm: 2)"
    )
    # The lines keep their own grades; the store keeps the published colour.
    assert [line.grade for line in result.lines] == [R, None]
    store = ResultStore()
    store.track(["svc"])
    store.put(result)
    assert [run.grade for run in store.history("svc")] == [G]


def test_confirm_defaults_to_one(make_spec: SpecFactory) -> None:
    assert make_spec().confirm == 1
    assert make_spec(confirm=4).confirm == 4


# Through the scheduler, the runner and HTTP --------------------------------------------------


@pytest.fixture
async def damped(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> AsyncIterator[Engine]:
    spec = make_spec(service_id=SERVICE_ID, interval="1s", timeout="800ms", confirm=2)
    assert isinstance(spec, MongoReplicationLagSpec)
    engine = make_engine([spec], {"ZEROPROBE_CONNECTION_RS": replica_set.uri})
    try:
        yield engine
    finally:
        await engine.stop()


async def put_document(client: Client) -> dict[str, Any] | None:
    """The published document; None before the first run finished (503)."""
    response = await client.put(f"/{SERVICE_ID}")
    if response.status == 503:
        return None
    assert response.status == 200, await response.text()
    body: dict[str, Any] = json.loads(await response.read())[SERVICE_ID]
    return body


async def published_status_metric(client: Client) -> float:
    text = await (await client.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "zeroprobe_probe_status"
                and sample.labels.get("service_id") == SERVICE_ID
            ):
                return float(sample.value)
    raise AssertionError("no zeroprobe_probe_status series for the probe")


async def documents_until(
    client: Client, seen: list[dict[str, Any]], status: str, timeout_s: float = 15.0
) -> None:
    """Poll PUT, appending every new document, until one says `status` with nothing pending."""
    deadline = time.monotonic() + timeout_s
    while True:
        document = await put_document(client)
        if document is None:
            pass
        elif not seen or document["timestamp"] != seen[-1]["timestamp"]:
            seen.append(document)
            if document["status"] == status and "pending" not in body_of(document):
                return
        assert time.monotonic() < deadline, [(d["status"], body_of(d)) for d in seen]
        await asyncio.sleep(0.05)


def body_of(document: dict[str, Any]) -> str:
    body: str = document["messages"][0]["actionBody"]
    return body


async def test_green_red_green_with_confirm_two_publishes_each_change_one_run_late(
    aiohttp_client: AiohttpClient, damped: Engine, replica_set: SimulatedReplicaSet
) -> None:
    client: Client = await aiohttp_client(create_app(damped, start_engine=True))
    seen: list[dict[str, Any]] = []

    # The first result is published as measured.
    await documents_until(client, seen, "GREEN")
    assert len(seen) == 1

    replica_set.set_lag_ms(1, 120_000)  # far past the default red threshold (30 s)
    mark = len(seen)
    await documents_until(client, seen, "RED")
    changed = seen[mark:]
    # Exactly one run measured RED but still published GREEN, saying a change is pending.
    pending = [d for d in changed if "pending" in body_of(d)]
    assert len(pending) == 1, [(d["status"], body_of(d)) for d in changed]
    assert pending[0]["status"] == "GREEN"
    assert "- change to RED pending: 1 of 2 runs agree (confirm: 2)" in body_of(pending[0])
    assert "replication lag 120000ms" in body_of(pending[0]), "the newest measurement is shown"
    assert changed[-1]["status"] == "RED"
    assert await published_status_metric(client) == 2

    replica_set.set_lag_ms(1, 0.0)
    mark = len(seen)
    await documents_until(client, seen, "GREEN")
    recovered = seen[mark:]
    pending = [d for d in recovered if "pending" in body_of(d)]
    assert len(pending) == 1, [(d["status"], body_of(d)) for d in recovered]
    assert pending[0]["status"] == "RED"
    assert "- change to GREEN pending: 1 of 2 runs agree (confirm: 2)" in body_of(pending[0])
    assert await published_status_metric(client) == 0

    # Never a colour change without a pending run before it.
    statuses = [d["status"] for d in seen]
    for previous, document in itertools.pairwise(seen):
        if previous["status"] != document["status"]:
            assert "pending" in body_of(previous), "a change is announced by the run before"
            assert "pending" not in body_of(document)
    changes = sum(1 for a, b in itertools.pairwise(statuses) if a != b)
    assert changes == 2, statuses

    # The history API lists the published colours.
    history = json.loads(await (await client.get(f"/api/v1/results/{SERVICE_ID}/history")).read())
    colours = [r["status"] for r in history["results"]]
    assert colours[0] == "GREEN"
    assert "RED" in colours
    assert colours[-1] == "GREEN"
