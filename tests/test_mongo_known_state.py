"""What a run skips because an earlier one, or the driver, knows it already: the `hello` (the
driver's topology says mongos or replica set), the config (fetched again when the status says
it changed) and the oplog window (used again while it may stand)."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import AsyncMongoClient

from probes.mongo_replication_lag import probe as mongo_probe
from probes.mongo_replication_lag.oplog import REUSE_MAX_S, OplogReading, reusable
from probes.mongo_replication_lag.probe import config_version
from schemas.grading import Grade, Thresholds
from tests.conftest import EngineFactory, SpecFactory
from tests.mongo_helpers import (
    DRIVER_SOCKET_LEAK,
    SERVICE_ID,
    FakeClock,
    collect_leaked_driver_sockets,  # noqa: F401 - autouse
    engine_for,
    fake_clock,  # noqa: F401 - the `clock` fixture
    graded,
    starting,
    texts,
)
from zeroprobe.simulators.mongo import SimulatedReplicaSet
from zeroprobe.simulators.sharded import SimulatedShardedCluster

pytestmark = pytest.mark.filterwarnings(DRIVER_SOCKET_LEAK)

BANDS = Thresholds(yellow=0.5, red=0.75)
WINDOW_S = 7200.0
READING = OplogReading("db1:27017", window_s=WINDOW_S)
# 1 % of a 2h window: a reading stands 72 s.
STANDS_S = 72.0


@pytest.fixture
def hellos(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The `hello`s the probe sends itself (not the driver's monitors), one entry each."""
    sent: list[str] = []
    real = mongo_probe._hello

    async def counting(client: Any) -> dict[str, Any]:
        sent.append("hello")
        return await real(client)

    monkeypatch.setattr(mongo_probe, "_hello", counting)
    return sent


def oplog_line(texts_: list[str]) -> str:
    (line,) = [text for text in texts_ if text.startswith("- oplog window")]
    return line


# --------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize(
    ("age_s", "behind_ms", "expected"),
    [
        pytest.param(0.0, [0], True, id="just-read"),
        pytest.param(STANDS_S - 0.001, [1_799_999], True, id="just-under-a-quarter-used"),
        pytest.param(STANDS_S, [0], False, id="one-percent-of-the-window-old"),
        pytest.param(-1.0, [0], False, id="clock-went-back"),
        # Half of yellow (50 %): a window halved since the reading would make it YELLOW.
        pytest.param(1.0, [1_800_000], False, id="a-quarter-used"),
        pytest.param(1.0, [0, 3_600_000], False, id="one-of-two-near-yellow"),
        pytest.param(1.0, [], True, id="no-secondary"),
    ],
)
def test_a_reading_stands_while_young_and_far_from_yellow(
    age_s: float, behind_ms: list[int], expected: bool
) -> None:
    behind = [(f"db{i + 2}:27017", ms) for i, ms in enumerate(behind_ms)]
    assert reusable(READING, age_s, behind, BANDS) is expected


def test_a_long_window_is_read_at_least_every_ten_minutes() -> None:
    day = OplogReading("db1:27017", window_s=26 * 3600)
    assert reusable(day, REUSE_MAX_S - 1, [], BANDS)
    assert not reusable(day, REUSE_MAX_S, [], BANDS)


def test_a_failed_read_never_stands() -> None:
    failed = OplogReading("db1:27017", problem="not authorized")
    assert not reusable(failed, 0.0, [], BANDS)


def test_the_config_version_is_that_of_the_answering_member() -> None:
    status = {
        "set": "rs0",
        "term": 7,
        "members": [
            {"_id": 0, "name": "db1:27017", "configVersion": 3, "configTerm": 7},
            {"_id": 1, "name": "db2:27017", "configVersion": 4, "configTerm": 7, "self": True},
        ],
    }
    assert config_version(status) == ("rs0", "db2:27017", 4, 7, 7)
    without = {"set": "rs0", "members": [{"_id": 0, "name": "db1:27017", "self": True}]}
    assert config_version(without) is None
    assert config_version({"set": "rs0"}) is None


# --------------------------------------------------------------------------- over the wire


async def test_hello_is_sent_only_until_the_driver_knows_the_server(
    replica_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    hellos: list[str],
) -> None:
    async with engine_for(make_engine, make_spec, replica_set.direct_uri(0)) as engine:
        first = await engine.run_once(SERVICE_ID)
        second = await engine.run_once(SERVICE_ID)

    assert hellos == ["hello"]
    assert first.grade is second.grade is Grade.GREEN
    assert texts(first) == texts(second)


async def test_a_replica_set_uri_needs_no_hello(
    replica_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    hellos: list[str],
) -> None:
    # `replicaSet=` tells the driver what it talks to before it has met a member.
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        result = await engine.run_once(SERVICE_ID)

    assert hellos == []
    assert result.grade is Grade.GREEN, texts(result)


async def test_a_mongos_known_to_the_driver_is_still_probed_as_a_cluster(
    make_spec: SpecFactory, make_engine: EngineFactory, hellos: list[str]
) -> None:
    cluster = SimulatedShardedCluster.build(lag_fn=lambda member, elapsed_s: 250.0).start()
    try:
        async with engine_for(
            make_engine, make_spec, cluster.uri, interval="4s", timeout="2s"
        ) as engine:
            first = await engine.run_once(SERVICE_ID)
            second = await engine.run_once(SERVICE_ID)
    finally:
        cluster.stop()

    assert hellos == ["hello"]
    for result in (first, second):
        assert result.grade is Grade.GREEN, texts(result)
        for shard in ("shard01", "shard02", "config"):
            assert starting(result, f"- {shard} Primary "), texts(result)


async def test_a_reconfig_is_seen_when_the_status_announces_it(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    h1 = replica_set.hosts[1]
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        await engine.run_once(SERVICE_ID)
        # A config changed behind the status' back (same configVersion): not fetched again.
        replica_set.members[1].hidden = True
        same_version = await engine.run_once(SERVICE_ID)
        # The status now names a new version, as a real reconfig does.
        status = await _status_of(replica_set)
        for member in status["members"]:
            member["configVersion"] = 2
        replica_set.status_reply = status
        new_version = await engine.run_once(SERVICE_ID)

    assert "hidden" not in _line_of(same_version.lines, h1)
    assert "hidden" in _line_of(new_version.lines, h1)


async def test_an_election_fetches_the_config_again(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    h1 = replica_set.hosts[1]
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        await engine.run_once(SERVICE_ID)
        replica_set.members[2].hidden = True
        replica_set.elect(0)  # the same primary, a new term (and configTerm)
        result = await engine.run_once(SERVICE_ID)

    assert "hidden" in _line_of(result.lines, replica_set.hosts[2])
    assert "hidden" not in _line_of(result.lines, h1)


async def test_a_young_window_reading_stands_for_the_next_run(
    replica_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    clock: FakeClock,
) -> None:
    replica_set.oplog_window_s = WINDOW_S
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        first = await engine.run_once(SERVICE_ID)
        clock.now_s += STANDS_S - 1
        replica_set.oplog_window_s = WINDOW_S * 2  # not read: the reading stands
        second = await engine.run_once(SERVICE_ID)
        clock.now_s += 2
        third = await engine.run_once(SERVICE_ID)

    assert len(replica_set.oplog_finds) == 4  # the first and the third run
    assert oplog_line(texts(first)) == oplog_line(texts(second))
    assert oplog_line(texts(first)).startswith(f"- oplog window 2h 0m on {replica_set.hosts[0]}")
    assert oplog_line(texts(third)).startswith(f"- oplog window 4h 0m on {replica_set.hosts[0]}")


async def test_near_yellow_the_window_is_read_every_run(
    replica_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    clock: FakeClock,
) -> None:
    replica_set.oplog_window_s = WINDOW_S
    replica_set.set_lag_ms(2, 1_801_000)  # over a quarter of the window: half of yellow
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        await engine.run_once(SERVICE_ID)
        replica_set.oplog_window_s = WINDOW_S / 2  # a burst halved the window
        result = await engine.run_once(SERVICE_ID)

    assert len(replica_set.oplog_finds) == 4
    line = oplog_line(texts(result))
    assert line.startswith(f"- oplog window 1h 0m on {replica_set.hosts[0]}"), line
    assert graded(result)[line] is Grade.YELLOW


async def test_after_an_election_the_window_is_read_again(
    replica_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    clock: FakeClock,
) -> None:
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        await engine.run_once(SERVICE_ID)
        replica_set.elect(0)  # the same primary, a new term
        result = await engine.run_once(SERVICE_ID)

    assert len(replica_set.oplog_finds) == 4
    assert oplog_line(texts(result)).startswith(f"- oplog window 26h 14m on {replica_set.hosts[0]}")


async def test_a_failed_read_is_tried_again_next_run(
    replica_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    clock: FakeClock,
) -> None:
    replica_set.fail("find", 13, "Unauthorized", "not authorized on local to execute command")
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        refused = await engine.run_once(SERVICE_ID)
        replica_set.clear_failures()
        granted = await engine.run_once(SERVICE_ID)

    assert oplog_line(texts(refused)).startswith("- oplog window unknown: not authorized")
    assert oplog_line(texts(granted)).startswith("- oplog window 26h 14m on ")


# --------------------------------------------------------------------------- helpers


async def _status_of(replica_set: SimulatedReplicaSet) -> dict[str, Any]:
    """The primary's replSetGetStatus reply, as a document to edit."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(replica_set.direct_uri(0))
    try:
        return await client.admin.command("replSetGetStatus")
    finally:
        await client.close()


def _line_of(lines: Any, host: str) -> str:
    (text,) = [line.text for line in lines if f" {host}" in line.text and "oplog" not in line.text]
    return str(text)
