"""Majority at risk, the commit point, elections between runs and MongoDB's own words for what
is wrong: the pure functions on recorded replies, then over the wire.

Counts follow MongoDB's definition: a majority write needs `writeMajorityCount` data-bearing
voting members; healthy voters are members with health 1, PRIMARY or SECONDARY, votes > 0.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from probes.mongo_replication_lag.elections import Election, grade_elections, track_elections
from probes.mongo_replication_lag.replica_set import (
    grade_replica_set,
    grade_set,
    measure_replica_set,
)
from schemas.context_spec import MongoReplicationLagSpec
from schemas.grading import Grade, Line
from tests.conftest import EngineFactory, SpecFactory, load_fixture
from tests.mongo_helpers import (
    DRIVER_SOCKET_LEAK,
    SERVICE_ID,
    FakeClock,
    engine_for,
    fake_clock,  # noqa: F401 - the `clock` fixture
    graded,
    starting,
    texts,
)
from zeroprobe.simulators.mongo import SimulatedReplicaSet

pytestmark = pytest.mark.filterwarnings(DRIVER_SOCKET_LEAK)

Doc = dict[str, Any]
G, Y, R = Grade.GREEN, Grade.YELLOW, Grade.RED
AT_RISK = "- no member can be lost without losing majority writes"
IMPOSSIBLE = "- majority writes impossible"


@pytest.fixture
def spec(make_spec: SpecFactory) -> MongoReplicationLagSpec:
    return make_spec()


def replies(status_name: str, config_name: str) -> tuple[Doc, Doc]:
    return (
        copy.deepcopy(load_fixture(f"replSetGetStatus-{status_name}.json")),
        copy.deepcopy(load_fixture(f"replSetGetConfig-{config_name}.json")),
    )


def member(doc: Doc, name: str) -> Doc:
    members = doc["config"]["members"] if "config" in doc else doc["members"]
    (found,) = [m for m in members if name in (m.get("name"), m.get("host"))]
    found_doc: Doc = found
    return found_doc


def set_lines(status: Doc, config: Doc, spec: MongoReplicationLagSpec) -> list[tuple[str, Grade]]:
    """The set's own lines (after the members'), as (text, grade)."""
    lines = grade_replica_set(measure_replica_set(status, config), spec)
    own = grade_set(measure_replica_set(status, config), spec)
    assert lines[len(lines) - len(own) :] == own
    return [(line.text, line.grade) for line in own if line.grade is not None]


def down(status: Doc, *names: str) -> None:
    for name in names:
        member(status, name).update(
            {"health": 0, "state": 8, "stateStr": "(not reachable/healthy)"}
        )


def five_members(status: Doc, config: Doc) -> None:
    """Make 7.0-healthy a 5-member set (db4, db5 copies of db3): writeMajorityCount 3."""
    for number in (4, 5):
        extra = copy.deepcopy(member(status, "db3:27017"))
        extra.update({"_id": number - 1, "name": f"db{number}:27017"})
        status["members"].append(extra)
        extra_config = copy.deepcopy(member(config, "db3:27017"))
        extra_config.update({"_id": number - 1, "host": f"db{number}:27017"})
        config["config"]["members"].append(extra_config)
    status.update({"majorityVoteCount": 3, "writeMajorityCount": 3, "votingMembersCount": 5})


def five_members_with(*names: str) -> Callable[[Doc, Doc], None]:
    """`five_members`, then `names` down."""

    def change(status: Doc, config: Doc) -> None:
        five_members(status, config)
        down(status, *names)

    return change


# --------------------------------------------------------------------------- majority at risk


def _nothing(status: Doc, config: Doc) -> None:
    pass


@pytest.mark.parametrize(
    ("fixture", "change", "expected"),
    [
        pytest.param("7.0-healthy", _nothing, [], id="3-of-3-healthy"),
        pytest.param(
            "7.0-healthy",
            lambda s, c: down(s, "db3:27017"),
            [(f"{AT_RISK}: 2 of 2 needed", Y)],
            id="one-of-3-down",
        ),
        pytest.param(
            "7.0-healthy",
            lambda s, c: down(s, "db2:27017", "db3:27017"),
            [(f"{IMPOSSIBLE}: 1 of 2 needed", R)],
            id="two-of-3-down",
        ),
        pytest.param(
            "7.0-healthy",
            lambda s, c: member(s, "db2:27017").update({"state": 3, "stateStr": "RECOVERING"}),
            [(f"{AT_RISK}: 2 of 2 needed", Y)],
            id="recovering-is-not-a-healthy-voter",
        ),
        pytest.param(
            "7.0-healthy",
            lambda s, c: member(c, "db3:27017").update({"votes": 0}),
            [(f"{AT_RISK}: 2 of 2 needed", Y)],
            id="non-voting-member-does-not-count",
        ),
        pytest.param(
            "7.0-arbiter",
            _nothing,
            [(f"{AT_RISK}: 2 of 2 needed", Y)],
            id="psa-arbiter-does-not-count",
        ),
        pytest.param("7.0-healthy", five_members, [], id="5-members-healthy"),
        pytest.param(
            "7.0-healthy",
            five_members_with("db4:27017"),
            [],
            id="5-members-one-down",
        ),
        pytest.param(
            "7.0-healthy",
            five_members_with("db4:27017", "db5:27017"),
            [(f"{AT_RISK}: 3 of 3 needed", Y)],
            id="5-members-two-down",
        ),
        pytest.param(
            "7.0-healthy",
            five_members_with("db3:27017", "db4:27017", "db5:27017"),
            [(f"{IMPOSSIBLE}: 2 of 3 needed", R)],
            id="5-members-three-down",
        ),
        # MongoDB 4.0 reports no writeMajorityCount: worked out from the config (3 voters: 2)
        pytest.param(
            "4.0-healthy",
            lambda s, c: down(s, "db3:27017"),
            [(f"{AT_RISK}: 2 of 2 needed", Y)],
            id="4.0-count-from-config",
        ),
        pytest.param(
            "7.0-arbiter",
            lambda s, c: s.pop("writeMajorityCount"),
            # 3 voters make a majority of 2, and only 2 of them hold data
            [(f"{AT_RISK}: 2 of 2 needed", Y)],
            id="psa-count-from-config",
        ),
    ],
)  # fmt: skip
def test_majority_at_risk(
    fixture: str,
    change: Callable[[Doc, Doc], object],
    expected: list[tuple[str, Grade]],
    spec: MongoReplicationLagSpec,
) -> None:
    status, config = replies(fixture, fixture)
    change(status, config)
    assert set_lines(status, config, spec) == expected


@pytest.mark.parametrize(
    ("committed", "expected"),
    [
        pytest.param("2026-11-22T02:00:00.123", [], id="caught-up"),
        pytest.param("2026-11-22T01:59:55.124", [], id="4999ms"),
        pytest.param(
            "2026-11-22T01:59:55.123",
            [("- majority commit point 5000ms behind the primary db1:27017", Y)],
            id="5000ms",
        ),
        pytest.param(
            "2026-11-22T01:59:30.123",
            [("- majority commit point 30000ms behind the primary db1:27017", R)],
            id="30000ms",
        ),
        pytest.param("1970-01-01T00:00:00", [], id="no-commit-point-yet"),
    ],
)
def test_commit_point_behind_the_primary_is_graded_with_the_lag_bands(
    committed: str, expected: list[tuple[str, Grade]], spec: MongoReplicationLagSpec
) -> None:
    # The primary applied its last write at 02:00:00.123.
    status, config = replies("7.0-healthy", "7.0-healthy")
    status["optimes"]["lastCommittedWallTime"] = dt.datetime.fromisoformat(committed)
    assert set_lines(status, config, spec) == expected


def test_commit_point_without_a_primary_is_not_graded(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("7.0-no-primary", "7.0-healthy")
    status["optimes"]["lastCommittedWallTime"] = dt.datetime(2026, 11, 22, 1, 0)
    assert not any("commit point" in text for text, _ in set_lines(status, config, spec))


# --------------------------------------------------------------------------- MongoDB's words


def test_unreachable_member_carries_the_heartbeat_message(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")
    down(status, "db3:27017")
    member(status, "db3:27017")["lastHeartbeatMessage"] = (
        "Couldn't get a connection within the time limit\nof 10000ms"
    )
    lines = grade_replica_set(measure_replica_set(status, config), spec)
    # One line, whatever line breaks the server put in its message.
    assert lines[2] == Line(
        "- Secondary db3:27017 unreachable: Couldn't get a connection within the time limit "
        "of 10000ms",
        R,
    )


def test_a_long_heartbeat_message_is_cut(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")
    down(status, "db3:27017")
    member(status, "db3:27017")["lastHeartbeatMessage"] = "x" * 1000
    text = grade_replica_set(measure_replica_set(status, config), spec)[2].text
    assert text.endswith("…")
    assert len(text) < 260


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            {"syncSourceHost": "", "infoMessage": "Could not find member to sync from"},
            ("- Secondary db2:27017 replication lag 1024ms (no sync source: Could not find "
             "member to sync from)", Y),
            id="4.4+-syncSourceHost",
        ),
        pytest.param(
            {"syncSourceHost": "", "infoMessage": ""},
            ("- Secondary db2:27017 replication lag 1024ms (no sync source)", Y),
            id="no-info-message",
        ),
        pytest.param(
            {"syncSourceHost": "", "lastAppliedWallTime": dt.datetime(2026, 11, 22, 1, 59)},
            ("- Secondary db2:27017 replication lag 60123ms (no sync source)", R),
            id="lag-already-red",
        ),
        pytest.param(
            {"syncSourceHost": "db1:27017", "infoMessage": "some note"},
            ("- Secondary db2:27017 replication lag 1024ms", G),
            id="has-a-source",
        ),
    ],
)  # fmt: skip
def test_secondary_without_a_sync_source_says_so(
    change: Doc, expected: tuple[str, Grade], spec: MongoReplicationLagSpec
) -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")
    member(status, "db2:27017").update(change)
    line = grade_replica_set(measure_replica_set(status, config), spec)[1]
    assert (line.text, line.grade) == expected


def test_4_0_syncing_to_empty_is_no_sync_source(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("4.0-healthy", "4.0-healthy")
    db2 = member(status, "db2:27017")
    db2.pop("syncSourceHost", None)
    db2["syncingTo"] = ""
    line = grade_replica_set(measure_replica_set(status, config), spec)[1]
    assert line == Line("- Secondary db2:27017 replication lag 2000ms (no sync source)", Y)


GIB = 1024**3
INITIAL_SYNC_4_4 = {
    "failedInitialSyncAttempts": 0,
    "maxFailedInitialSyncAttempts": 10,
    "initialSyncStart": dt.datetime(2026, 11, 22, 1, 0),
    "totalInitialSyncElapsedMillis": 3_600_000,
    "initialSyncAttempts": [],
    "approxTotalDataSize": 40 * GIB,
    "approxTotalBytesCopied": 12.4 * GIB,
    "remainingInitialSyncEstimatedMillis": 25 * 60_000,
    "appliedOps": 0,
    "totalTimeUnreachableMillis": 0,
    "databases": {"databasesToClone": 3, "databasesCloned": 1},
}


@pytest.mark.parametrize(
    ("sync", "expected"),
    [
        pytest.param(
            INITIAL_SYNC_4_4,
            " (initial sync: 31% copied, 12.4 GiB of 40.0 GiB, about 25m left)",
            id="4.4+-bytes-and-estimate",
        ),
        pytest.param(
            {**INITIAL_SYNC_4_4, "failedInitialSyncAttempts": 2},
            " (initial sync: 31% copied, 12.4 GiB of 40.0 GiB, about 25m left, "
            "after 2 failed attempts)",
            id="retrying",
        ),
        pytest.param(
            {"databases": {"databasesToClone": 3, "databasesCloned": 1}},
            " (initial sync: 1 of 3 databases cloned)",
            id="databases-only",
        ),
        pytest.param({}, "", id="nothing-to-tell"),
    ],
)
def test_startup2_member_shows_its_initial_sync_progress(
    sync: Doc, expected: str, spec: MongoReplicationLagSpec
) -> None:
    # Asked directly, the member in initial sync answers with its initialSyncStatus.
    status, config = replies("7.0-healthy", "7.0-healthy")
    member(status, "db1:27017").pop("self")
    member(status, "db2:27017").update({"state": 5, "stateStr": "STARTUP2", "self": True})
    status["initialSyncStatus"] = sync
    line = grade_replica_set(measure_replica_set(status, config), spec)[1]
    assert line == Line(f"- Member db2:27017 in state STARTUP2{expected}", Y)


def test_initial_sync_status_belongs_to_the_member_that_answered(
    spec: MongoReplicationLagSpec,
) -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")  # db1 answered
    member(status, "db2:27017").update({"state": 5, "stateStr": "STARTUP2"})
    status["initialSyncStatus"] = INITIAL_SYNC_4_4
    line = grade_replica_set(measure_replica_set(status, config), spec)[1]
    assert line == Line("- Member db2:27017 in state STARTUP2", Y)


# --------------------------------------------------------------------------- elections

Run = tuple[float, str | None, int | None]


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        pytest.param([(0, "a", 1)], (), id="first-run-sees-nothing"),
        pytest.param([(0, "a", 1), (60, "a", 1)], (), id="same-primary-same-term"),
        pytest.param(
            [(0, "a", 24), (60, "b", 25)], (Election(0, "a", "b", 24, 25),), id="new-primary"
        ),
        pytest.param(
            [(0, "a", 24), (60, "a", 25)], (Election(0, "a", "a", 24, 25),), id="new-term"
        ),
        pytest.param(
            [(0, "a", 24), (60, None, None), (120, "b", 25)],
            (Election(0, "a", "b", 24, 25),),
            id="a-run-without-primary-in-between",
        ),
        pytest.param(
            [(0, "a", 1), (60, "b", 2), (240, "b", 2)],
            (Election(180, "a", "b", 1, 2),),
            id="still-shown-3m-later",
        ),
        pytest.param(
            [(0, "a", 1), (60, "b", 2), (659, "b", 2)],
            (Election(599, "a", "b", 1, 2),),
            id="shown-until-the-window-ends",
        ),
        pytest.param([(0, "a", 1), (60, "b", 2), (660, "b", 2)], (), id="gone-after-10m"),
        pytest.param(
            [(0, "a", 1), (60, "b", 2), (120, "a", 3), (180, "a", 3)],
            (Election(60, "b", "a", 2, 3), Election(120, "a", "b", 1, 2)),
            id="two-newest-first",
        ),
        pytest.param(
            [(0, "a", 1), (10, "b", 2), (500, "a", 3), (700, "a", 3)],
            (Election(200, "b", "a", 2, 3),),
            id="the-older-one-leaves-first",
        ),
        pytest.param(
            [(0, "a", None), (60, "b", None)],
            (Election(0, "a", "b", None, None),),
            id="no-term-reported",
        ),
        pytest.param([(0, "a", None), (60, "a", 7)], (), id="a-term-appearing-is-no-election"),
    ],
)
def test_track_elections(runs: list[Run], expected: tuple[Election, ...]) -> None:
    memory: dict[str, Any] = {}
    seen: tuple[Election, ...] = ()
    for now_s, primary, term in runs:
        seen = track_elections(memory, primary, term, now_s, window_s=600)
    assert seen == expected


@pytest.mark.parametrize(
    ("seen", "window_s", "expected"),
    [
        pytest.param(
            (Election(180, "db1:27017", "db2:27017", 24, 25),),
            600,
            "- primary changed 3m ago: db1:27017 → db2:27017 (term 24 → 25)",
            id="the-issue-example",
        ),
        pytest.param(
            (Election(45, "db1:27017", "db1:27017", 24, 25),),
            600,
            "- new term 45s ago: db1:27017 elected primary again (term 24 → 25)",
            id="same-primary",
        ),
        pytest.param(
            (Election(45, "db1:27017", "db2:27017", None, None),),
            600,
            "- primary changed 45s ago: db1:27017 → db2:27017",
            id="no-terms",
        ),
        pytest.param(
            (
                Election(60, "db2:27017", "db3:27017", 25, 26),
                Election(240, "db1:27017", "db2:27017", 24, 25),
                Election(700, "db3:27017", "db1:27017", 23, 24),
            ),
            900,
            "- primary changed 1m ago: db2:27017 → db3:27017 (term 25 → 26); "
            "3 elections in the last 15m",
            id="several",
        ),
    ],
)
def test_election_line(seen: tuple[Election, ...], window_s: float, expected: str) -> None:
    assert grade_elections(seen, window_s) == Line(expected, Y)
    assert grade_elections((), window_s) is None


# --------------------------------------------------------------------------- over the wire


async def test_an_election_is_yellow_for_the_next_10_minutes(
    replica_set: SimulatedReplicaSet,
    clock: FakeClock,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
) -> None:
    h0, h1, _ = replica_set.hosts
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        before = await engine.run_once(SERVICE_ID)
        replica_set.elect(1)
        clock.now_s += 30
        just_after = await engine.run_once(SERVICE_ID)
        clock.now_s += 180
        later = await engine.run_once(SERVICE_ID)
        clock.now_s += 419  # 599 s after it was seen
        last = await engine.run_once(SERVICE_ID)
        clock.now_s += 1
        gone = await engine.run_once(SERVICE_ID)

    assert before.grade is Grade.GREEN, texts(before)
    changed = f"- primary changed {{}} ago: {h0} → {h1} (term 1 → 2)"
    assert starting(just_after, "- primary changed") == [changed.format("0s")]
    assert graded(just_after)[changed.format("0s")] is Grade.YELLOW
    assert starting(later, "- primary changed") == [changed.format("3m")]
    assert later.grade is Grade.YELLOW, texts(later)
    assert starting(last, "- primary changed") == [changed.format("9m")]
    assert not starting(gone, "- primary changed"), texts(gone)
    # The new primary is measured as the primary.
    assert f"- Primary {h1} replication lag 0ms" in texts(gone)


async def test_several_elections_are_counted_and_the_window_is_the_specs(
    replica_set: SimulatedReplicaSet,
    clock: FakeClock,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
) -> None:
    h0, h1, h2 = replica_set.hosts
    async with engine_for(make_engine, make_spec, replica_set.uri, election_window="2m") as engine:
        await engine.run_once(SERVICE_ID)
        replica_set.elect(1)
        await engine.run_once(SERVICE_ID)
        clock.now_s += 60
        replica_set.elect(2)
        twice = await engine.run_once(SERVICE_ID)
        clock.now_s += 119
        once = await engine.run_once(SERVICE_ID)
        clock.now_s += 1
        none = await engine.run_once(SERVICE_ID)

    assert starting(twice, "- primary changed") == [
        f"- primary changed 0s ago: {h1} → {h2} (term 2 → 3); 2 elections in the last 2m"
    ]
    assert starting(once, "- primary changed") == [
        f"- primary changed 1m ago: {h1} → {h2} (term 2 → 3)"
    ]
    assert not starting(none, "- primary changed"), texts(none)
    assert h0 not in starting(once, "- primary changed")[0]


async def test_members_down_put_majority_writes_at_risk_then_out_of_reach(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    _, h1, h2 = replica_set.hosts
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        healthy = await engine.run_once(SERVICE_ID)
        replica_set.stop_member(2)
        one_down = await engine.run_once(SERVICE_ID)
        replica_set.stop_member(1)
        two_down = await engine.run_once(SERVICE_ID)

    assert not starting(healthy, "- no member") and not starting(healthy, "- majority")
    assert graded(one_down)[f"{AT_RISK}: 2 of 2 needed"] is Grade.YELLOW
    assert graded(two_down)[f"{IMPOSSIBLE}: 1 of 2 needed"] is Grade.RED
    # The down members say why, in MongoDB's words, after the line the lag rules give.
    for host in (h1, h2):
        (line,) = starting(two_down, f"- Secondary {host} unreachable: ")
        assert "Connection refused" in line, line


async def test_a_secondary_without_a_sync_source_over_the_wire(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    h1 = replica_set.hosts[1]
    replica_set.members[1].no_sync_source = True
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        result = await engine.run_once(SERVICE_ID)

    (line,) = starting(result, f"- Secondary {h1} ")
    assert line.startswith(f"- Secondary {h1} replication lag 0ms (no sync source: ")
    assert graded(result)[line] is Grade.YELLOW
    assert result.grade is Grade.YELLOW


async def test_a_non_voting_member_leaves_no_margin_for_majority_writes(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    replica_set.members[2].votes = 0
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        result = await engine.run_once(SERVICE_ID)

    assert graded(result)[f"{AT_RISK}: 2 of 2 needed"] is Grade.YELLOW
    assert result.grade is Grade.YELLOW
