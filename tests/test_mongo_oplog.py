"""The oplog window and each secondary's headroom in it: the pure grading, then over the wire.

Expected spans and shares are worked out by hand: a window of 2h (7200 s), a member 1h behind
uses half of it (YELLOW at the default 50 %), 1h 30m three quarters (RED at 75 %).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from bson import Timestamp
from bson.datetime_ms import DatetimeMS

from probes.mongo_replication_lag.driver import driver_timeout_s
from probes.mongo_replication_lag.oplog import (
    REUSE_MAX_S,
    OplogReading,
    entry_time_ms,
    grade_oplog,
)
from schemas.context_spec import MongoReplicationLagSpec
from schemas.grading import Grade, Line, Thresholds
from tests.conftest import EngineFactory, SpecFactory
from tests.mongo_helpers import (
    DRIVER_SOCKET_LEAK,
    HEADROOM_METRIC,
    LAG_METRIC,
    SERVICE_ID,
    WINDOW_METRIC,
    FakeClock,
    engine_for,
    fake_clock,  # noqa: F401 - the `clock` fixture
    graded,
    series,
    starting,
    texts,
)
from zeroprobe.simulators.mongo import SimulatedReplicaSet

pytestmark = pytest.mark.filterwarnings(DRIVER_SOCKET_LEAK)

G, Y, R = Grade.GREEN, Grade.YELLOW, Grade.RED
DEFAULT_BANDS = Thresholds(yellow=0.5, red=0.75)
HEAD = "- oplog window 2h 0m on db1:27017"


# --------------------------------------------------------------------------- grading


@pytest.mark.parametrize(
    ("window_s", "behind", "bands", "expected"),
    [
        pytest.param(
            7200, [("db2:27017", 0)], DEFAULT_BANDS,
            Line(f"{HEAD}; least headroom 2h 0m (db2:27017)", G),
            id="caught-up",
        ),
        pytest.param(
            7200, [("db2:27017", 3_599_999)], DEFAULT_BANDS,
            # 3600.001 s left
            Line(f"{HEAD}; least headroom 1h 0m (db2:27017)", G),
            id="just-under-half",
        ),
        pytest.param(
            7200, [("db2:27017", 3_600_000)], DEFAULT_BANDS,
            Line(f"{HEAD}; least headroom 1h 0m (db2:27017)", Y),
            id="half-used-is-yellow",
        ),
        pytest.param(
            7200, [("db2:27017", 5_399_999)], DEFAULT_BANDS,
            Line(f"{HEAD}; least headroom 30m (db2:27017)", Y),
            id="just-under-three-quarters",
        ),
        pytest.param(
            7200, [("db2:27017", 5_400_000)], DEFAULT_BANDS,
            Line(f"{HEAD}; least headroom 30m (db2:27017)", R),
            id="three-quarters-used-is-red",
        ),
        pytest.param(
            7200, [("db2:27017", 7_200_000)], DEFAULT_BANDS,
            Line(f"{HEAD}; least headroom 0s (db2:27017)", R),
            id="all-used",
        ),
        pytest.param(
            7200, [("db2:27017", 7_500_000)], DEFAULT_BANDS,
            Line(f"{HEAD}; no headroom: db2:27017 is 5m further behind than the window", R),
            id="fell-off-the-oplog",
        ),
        pytest.param(
            7200, [("db2:27017", 600_000), ("db3:27017", 4_000_000)], DEFAULT_BANDS,
            # db3 uses 55.6 %: the line names it and carries its grade
            Line(f"{HEAD}; least headroom 53m (db3:27017)", Y),
            id="least-headroom-is-the-furthest-behind",
        ),
        pytest.param(
            7200, [("db2:27017", 60_000), ("db3:27017", 60_000)], DEFAULT_BANDS,
            Line(f"{HEAD}; least headroom 1h 59m (db2:27017)", G),
            id="tie-names-the-first",
        ),
        pytest.param(
            7200, [("db2:27017", 1_440_000)], Thresholds(yellow=0.2, red=0.4),
            # 20 % of 2h is 24m: the spec's bands replace the defaults
            Line(f"{HEAD}; least headroom 1h 36m (db2:27017)", Y),
            id="spec-bands",
        ),
        pytest.param(
            7200, [], DEFAULT_BANDS,
            Line(f"{HEAD}; no secondary to measure headroom against", G),
            id="no-secondary",
        ),
        pytest.param(
            26 * 3600 + 14 * 60, [("db3:27017", 34 * 60_000)], DEFAULT_BANDS,
            Line(
                "- oplog window 26h 14m on db1:27017; least headroom 25h 40m (db3:27017)", G
            ),
            id="the-issue-example",
        ),
        pytest.param(
            0, [("db2:27017", 0)], DEFAULT_BANDS,
            Line("- oplog window 0s on db1:27017; least headroom 0s (db2:27017)", G),
            id="one-entry-caught-up",
        ),
        pytest.param(
            0, [("db2:27017", 1)], DEFAULT_BANDS,
            Line(
                "- oplog window 0s on db1:27017; no headroom: db2:27017 is 0s further behind "
                "than the window",
                R,
            ),
            id="one-entry-behind",
        ),
    ],
)  # fmt: skip
def test_oplog_line(
    window_s: float, behind: list[tuple[str, int]], bands: Thresholds, expected: Line
) -> None:
    assert grade_oplog(OplogReading("db1:27017", window_s=window_s), behind, bands) == expected


@pytest.mark.parametrize(
    ("reading", "expected"),
    [
        pytest.param(
            OplogReading("db1:27017", problem="local.oplog.rs on db1:27017 is empty"),
            Line("- oplog window unknown: local.oplog.rs on db1:27017 is empty", Y),
            id="unknown-is-yellow",
        ),
        pytest.param(
            OplogReading("db1:27017", problem="not read here", problem_grade=None),
            Line("- oplog window unknown: not read here", None),
            id="not-read-is-not-graded",
        ),
    ],
)
def test_unknown_window_line(reading: OplogReading, expected: Line) -> None:
    assert grade_oplog(reading, [("db2:27017", 10**9)], DEFAULT_BANDS) == expected


NOON = dt.datetime(2026, 11, 22, 12, 0, 0, 250000)
NOON_MS = 1795348800250


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param({"ts": Timestamp(1, 1), "wall": NOON}, NOON_MS, id="wall-naive-utc"),
        pytest.param({"wall": NOON.replace(tzinfo=dt.UTC)}, NOON_MS, id="wall-tz-aware"),
        pytest.param({"wall": DatetimeMS(NOON_MS)}, NOON_MS, id="wall-datetime-ms"),
        # MongoDB before 4.2 writes no wall: the ts seconds are the time
        pytest.param({"ts": Timestamp(1795348800, 7)}, 1795348800000, id="ts-only"),
        pytest.param({"ts": 1795348800}, None, id="ts-not-a-timestamp"),
        pytest.param({}, None, id="no-time"),
    ],
)
def test_entry_time(entry: dict[str, object], expected: int | None) -> None:
    assert entry_time_ms(entry) == expected


def test_oplog_thresholds_must_rise_and_stay_within_the_window(make_spec: SpecFactory) -> None:
    spec = make_spec()
    assert (spec.oplog.read, spec.oplog.yellow, spec.oplog.red) == (True, 0.5, 0.75)
    for bad in ({"yellow": 0.8, "red": 0.6}, {"yellow": 0, "red": 0.5}, {"red": 1.5}):
        with pytest.raises(ValueError, match="oplog"):
            make_spec(oplog=bad)


# --------------------------------------------------------------------------- over the wire


@pytest.fixture
def delayed_set(replica_set: SimulatedReplicaSet) -> SimulatedReplicaSet:
    """The 3-member set with member 2 applying an hour late on purpose (a delayed member)."""
    replica_set.members[2].delay_s = 3600
    return replica_set


@pytest.mark.parametrize(
    ("window_s", "expected_span", "expected_headroom", "expected"),
    [
        # 3600 s of 7300 s used: 49 %
        pytest.param(7300, "2h 1m", "1h 1m", G, id="49-percent"),
        pytest.param(7000, "1h 56m", "56m", Y, id="51-percent"),
        pytest.param(4700, "1h 18m", "18m", R, id="77-percent"),
    ],
)
async def test_a_delayed_member_is_graded_on_the_window_its_delay_uses(
    delayed_set: SimulatedReplicaSet,
    *,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    window_s: float,
    expected_span: str,
    expected_headroom: str,
    expected: Grade,
) -> None:
    h0, h1, h2 = delayed_set.hosts
    delayed_set.oplog_window_s = window_s
    async with engine_for(make_engine, make_spec, delayed_set.uri) as engine:
        result = await engine.run_once(SERVICE_ID)

    line = f"- oplog window {expected_span} on {h0}; least headroom {expected_headroom} ({h2})"
    assert texts(result) == [
        f"- Primary {h0} replication lag 0ms",
        f"- Secondary {h1} replication lag 0ms",
        # its lag beyond the delay is nil: GREEN, whatever the window
        f"- Secondary {h2} (delayed 3600s) replication lag 0ms",
        line,
    ]
    assert graded(result)[line] is expected
    assert result.grade is expected


async def test_the_window_is_read_on_the_primary_with_two_bounded_finds(
    replica_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    clock: FakeClock,
) -> None:
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        await engine.run_once(SERVICE_ID)
        clock.now_s += REUSE_MAX_S  # the first reading is too old to stand for the second run
        await engine.run_once(SERVICE_ID)

    finds = replica_set.oplog_finds
    # Two runs, one find for each end of the oplog, all of them on the primary.
    assert [(member, find["sort"]) for member, find in finds] == [
        (0, {"$natural": 1}),
        (0, {"$natural": -1}),
        (0, {"$natural": 1}),
        (0, {"$natural": -1}),
    ]
    budget_ms = driver_timeout_s(make_spec().timeout_s) * 1000
    for _, find in finds:
        assert find["$db"] == "local"
        assert find["limit"] == 1
        assert find["projection"] == {"ts": 1, "wall": 1, "_id": 0}
        assert 0 < find["maxTimeMS"] <= budget_ms, find


async def test_without_read_on_local_the_line_names_the_privilege_and_is_yellow(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    h0, h1, h2 = replica_set.hosts
    replica_set.set_lag_ms(1, 1200)
    replica_set.fail("find", 13, "Unauthorized", "not authorized on local to execute command")
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        result = await engine.run_once(SERVICE_ID)
        liveness = engine.liveness()
        lags, windows = series(engine, LAG_METRIC), series(engine, WINDOW_METRIC)
        headrooms = series(engine, HEADROOM_METRIC)

    privilege = (
        "- oplog window unknown: not authorized to read local.oplog.rs: the user needs "
        "clusterMonitor and read on the local database (Unauthorized, code 13)"
    )
    # The lag lines are those of a fully privileged user.
    assert texts(result) == [
        f"- Primary {h0} replication lag 0ms",
        f"- Secondary {h1} replication lag 1200ms",
        f"- Secondary {h2} replication lag 0ms",
        privilege,
    ]
    assert graded(result)[privilege] is Grade.YELLOW
    assert result.grade is Grade.YELLOW  # never RED for a missing privilege
    assert result.reached_target is True
    assert all(check.ok for check in liveness)
    assert lags == pytest.approx({h0: 0.0, h1: 1.2, h2: 0.0})
    assert (windows, headrooms) == ({}, {})


async def test_another_failure_of_the_read_is_yellow_with_the_servers_reason(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    replica_set.fail("find", 50, "MaxTimeMSExpired", "operation exceeded time limit")
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        result = await engine.run_once(SERVICE_ID)

    (line,) = starting(result, "- oplog window unknown: reading local.oplog.rs: ")
    assert "MaxTimeMSExpired" in line and "code 50" in line
    assert graded(result)[line] is Grade.YELLOW
    assert result.grade is Grade.YELLOW


async def test_a_spec_may_leave_the_oplog_alone(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    async with engine_for(make_engine, make_spec, replica_set.uri, oplog={"read": False}) as engine:
        result = await engine.run_once(SERVICE_ID)

    assert not any("oplog" in text for text in texts(result)), texts(result)
    assert replica_set.oplog_finds == []
    assert result.grade is Grade.GREEN


async def test_a_direct_connection_to_a_secondary_sends_no_find(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    async with engine_for(make_engine, make_spec, replica_set.direct_uri(2)) as engine:
        result = await engine.run_once(SERVICE_ID)

    (line,) = starting(result, "- oplog window unknown: ")
    assert replica_set.hosts[2] in line
    assert graded(result)[line] is None
    assert replica_set.oplog_finds == []


async def test_window_and_headroom_metrics(
    delayed_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    h0, h1, h2 = delayed_set.hosts
    delayed_set.oplog_window_s = 7000
    delayed_set.set_lag_ms(1, 2500)
    async with engine_for(make_engine, make_spec, delayed_set.uri) as engine:
        started = time.monotonic()
        await engine.run_once(SERVICE_ID)
        took_s = time.monotonic() - started
        windows, headrooms = series(engine, WINDOW_METRIC), series(engine, HEADROOM_METRIC)
        lags = series(engine, LAG_METRIC)

        # A run that measures nothing drops them, as it drops the lags.
        delayed_set.fail("replSetGetStatus", 13, "Unauthorized", "not authorized")
        await engine.run_once(SERVICE_ID)
        after_failure = series(engine, WINDOW_METRIC), series(engine, HEADROOM_METRIC)

    # The window spans the two finds: at most the run's duration more than 7000 s.
    assert list(windows) == [delayed_set.set_name]
    assert 7000 <= windows[delayed_set.set_name] <= 7000 + took_s
    # Window minus how far behind, the delay included (h2 is 3600 s behind).
    assert headrooms == pytest.approx({h1: 7000 - 2.5, h2: 7000 - 3600}, abs=took_s + 0.01)
    # The lag series are the replica set's as before: one per member, by host.
    assert lags == pytest.approx({h0: 0.0, h1: 2.5, h2: 0.0})
    assert after_failure == ({}, {})


def test_spec_defaults(make_spec: SpecFactory) -> None:
    spec: MongoReplicationLagSpec = make_spec()
    assert spec.oplog.bands() == DEFAULT_BANDS
    assert spec.election_window == 600
    assert (spec.shard_connections, spec.config_servers) == ({}, True)
