"""The pure replication-lag algorithm on recorded replSetGetStatus / replSetGetConfig replies.

Every expected lag below was worked out by hand from the times written in the fixture files
(or in the test, for a modified member); none is computed with the code under test.
The primary of every recorded healthy set applied its last write at 2026-11-22T02:00:00.123Z
(`lastAppliedWallTime`) and reports `optimeDate` 2026-11-22T02:00:00Z.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from probes.errors import ProbeReplyError
from probes.mongo_replication_lag import (
    grade_mongo_replication_lag,
    measure_replica_set,
)
from schemas.context_spec import MongoReplicationLagSpec
from schemas.grading import Grade, worst
from tests.conftest import SpecFactory, load_fixture

Doc = dict[str, Any]
Expected = list[tuple[str, Grade | None]]

G, Y, R = Grade.GREEN, Grade.YELLOW, Grade.RED
EPOCH = dt.datetime(1970, 1, 1)
# A 3-member set (writeMajorityCount 2) with one member unhealthy or not a secondary.
NO_MEMBER_TO_LOSE = ("- no member can be lost without losing majority writes: 2 of 2 needed", Y)
# The recorded heartbeat errors of the down members of 7.0-member-down and 7.0-no-primary.
DB1_REFUSED = "Error connecting to db1:27017 (10.0.0.11:27017) :: caused by :: Connection refused"
DB3_REFUSED = "Error connecting to db3:27017 (10.0.0.13:27017) :: caused by :: Connection refused"


@pytest.fixture
def spec(make_spec: SpecFactory) -> MongoReplicationLagSpec:
    """A spec with the default thresholds (yellow 5000 ms, red 30000 ms)."""
    return make_spec()


def at(text: str) -> dt.datetime:
    """A BSON date as bson.json_util loads it: naive, UTC."""
    return dt.datetime.fromisoformat(text)


def replies(status_name: str, config_name: str) -> tuple[Doc, Doc]:
    """A fresh copy of a recorded status and config reply, free to modify."""
    return (
        copy.deepcopy(load_fixture(f"replSetGetStatus-{status_name}.json")),
        copy.deepcopy(load_fixture(f"replSetGetConfig-{config_name}.json")),
    )


def member(doc: Doc, name: str) -> Doc:
    """The status member called `name`, or the config member with host `name`."""
    members = doc["config"]["members"] if "config" in doc else doc["members"]
    found: list[Doc] = [m for m in members if name in (m.get("name"), m.get("host"))]
    assert len(found) == 1, f"{name} not in the fixture"
    return found[0]


def graded(status: Doc, config: Doc, spec: MongoReplicationLagSpec) -> Expected:
    """The (text, grade) of every line, in order."""
    lines = grade_mongo_replication_lag(measure_replica_set(status, config), spec)
    return [(line.text, line.grade) for line in lines]


def overall(status: Doc, config: Doc, spec: MongoReplicationLagSpec) -> Grade:
    return worst(grade_mongo_replication_lag(measure_replica_set(status, config), spec))


# --------------------------------------------------------------------------- recorded replies


@pytest.mark.parametrize(
    ("status_name", "config_name", "expected", "expected_overall"),
    [
        pytest.param(
            "4.0-healthy",
            "4.0-healthy",
            [
                ("- Primary db1:27017 replication lag 0ms", G),
                # optimeDate only (whole seconds): 02:00:00 - 01:59:58
                ("- Secondary db2:27017 replication lag 2000ms", G),
                ("- Secondary db3:27017 replication lag 0ms", G),
            ],
            G,
            id="mongo-4.0-optimeDate-only",
        ),
        pytest.param(
            "4.4-healthy",
            "4.4-healthy",
            [
                ("- Primary db1:27017 replication lag 0ms", G),
                # lastAppliedWallTime: 02:00:00.123 - 01:59:59.813 (optimeDate would give 1000)
                ("- Secondary db2:27017 replication lag 310ms", G),
                ("- Secondary db3:27017 replication lag 0ms", G),
            ],
            G,
            id="mongo-4.4-wall-time",
        ),
        pytest.param(
            "5.0-healthy",
            "5.0-healthy",
            [
                ("- Primary db1:27017 replication lag 0ms", G),
                ("- Secondary db2:27017 replication lag 45ms", G),
                ("- Secondary db3:27017 replication lag 3123ms", G),
            ],
            G,
            id="mongo-5.0-secondaryDelaySecs-0",
        ),
        pytest.param(
            "7.0-healthy",
            "7.0-healthy",
            [
                ("- Primary db1:27017 replication lag 0ms", G),
                ("- Secondary db2:27017 replication lag 1024ms", G),
                ("- Secondary db3:27017 replication lag 87ms", G),
            ],
            G,
            id="mongo-7.0-healthy",
        ),
        pytest.param(
            "4.4-delayed",
            "4.4-delayed",
            [
                ("- Primary db1:27017 replication lag 0ms", G),
                ("- Secondary db2:27017 replication lag 125ms", G),
                # slaveDelay 3600: 02:00:00.123 - 00:59:58.623 - 3600 s
                ("- Secondary db3:27017 (hidden, delayed 3600s) replication lag 1500ms", G),
                # db3 has no vote: two voters, both needed for a majority
                NO_MEMBER_TO_LOSE,
            ],
            Y,
            id="mongo-4.4-slaveDelay-hidden",
        ),
        pytest.param(
            "7.0-delayed-hidden",
            "7.0-delayed-hidden",
            [
                ("- Primary db1:27017 replication lag 0ms", G),
                ("- Secondary db2:27017 replication lag 250ms", G),
                ("- Secondary db3:27017 (hidden) replication lag 800ms", G),
                # secondaryDelaySecs 3600: 02:00:00.123 - 00:59:58.123 - 3600 s
                ("- Secondary db4:27017 (hidden, delayed 3600s) replication lag 2000ms", G),
            ],
            G,
            id="mongo-7.0-secondaryDelaySecs-hidden",
        ),
        pytest.param(
            "7.0-arbiter",
            "7.0-arbiter",
            [
                ("- Primary db1:27017 replication lag 0ms", G),
                ("- Secondary db2:27017 replication lag 122ms", G),
                ("- Arbiter db3:27017 (not graded: holds no data)", None),
                # primary-secondary-arbiter: both data members are needed for majority writes
                NO_MEMBER_TO_LOSE,
            ],
            Y,
            id="mongo-7.0-psa-arbiter-not-graded",
        ),
        pytest.param(
            "7.0-member-down",
            "7.0-healthy",
            [
                ("- Primary db1:27017 replication lag 0ms", G),
                ("- Secondary db2:27017 replication lag 133ms", G),
                # its stale lastAppliedWallTime (01:52:13.481) must not become a lag number
                (f"- Secondary db3:27017 unreachable: {DB3_REFUSED}", R),
                NO_MEMBER_TO_LOSE,
            ],
            R,
            id="mongo-7.0-member-down",
        ),
        pytest.param(
            "7.0-no-primary",
            "7.0-healthy",
            [
                ("- No primary: lags measured against the newest secondary db2:27017", R),
                # the down ex-primary's last wall time (02:00:00.500) is newer, but it is not
                # healthy: db2 (02:00:00.123) is the reference
                (f"- Secondary db1:27017 unreachable: {DB1_REFUSED}", R),
                ("- Secondary db2:27017 replication lag 0ms", G),
                ("- Secondary db3:27017 replication lag 7000ms", Y),
                NO_MEMBER_TO_LOSE,
            ],
            R,
            id="mongo-7.0-no-primary",
        ),
    ],
)
def test_recorded_replies(
    status_name: str,
    config_name: str,
    expected: Expected,
    expected_overall: Grade,
    spec: MongoReplicationLagSpec,
) -> None:
    status, config = replies(status_name, config_name)
    assert graded(status, config, spec) == expected
    assert overall(status, config, spec) is expected_overall


def test_observation_of_a_healthy_7_0_set() -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")
    observation = measure_replica_set(status, config)
    assert observation.set_name == "rs0"
    assert observation.has_primary is True
    assert observation.reference_name == "db1:27017"
    assert [(m.member_id, m.name, m.state, m.state_name) for m in observation.members] == [
        (0, "db1:27017", 1, "PRIMARY"),
        (1, "db2:27017", 2, "SECONDARY"),
        (2, "db3:27017", 2, "SECONDARY"),
    ]
    assert [m.condition for m in observation.members] == ["primary", "secondary", "secondary"]
    assert [m.lag_ms for m in observation.members] == [0, 1024, 87]
    assert not any(m.hidden or m.delay_s or m.no_optime for m in observation.members)


def test_observation_of_delayed_hidden_members_joins_config_by_id() -> None:
    # db4 has _id 5 but is the 4th member: a join by position would miss its config.
    status, config = replies("7.0-delayed-hidden", "7.0-delayed-hidden")
    observation = measure_replica_set(status, config)
    assert [(m.member_id, m.hidden, m.delay_s) for m in observation.members] == [
        (0, False, 0.0),
        (1, False, 0.0),
        (2, True, 0.0),
        (5, True, 3600.0),
    ]


def test_the_zero_problem_example_of_the_architecture(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")
    member(status, "db2:27017")["lastAppliedWallTime"] = at("2026-11-22T01:59:54.003")
    member(status, "db3:27017")["lastAppliedWallTime"] = at("2026-11-22T01:59:59.813")
    lines = grade_mongo_replication_lag(measure_replica_set(status, config), spec)
    assert "\n".join(line.text for line in lines) == (
        "- Primary db1:27017 replication lag 0ms\n"
        "- Secondary db2:27017 replication lag 6120ms\n"
        "- Secondary db3:27017 replication lag 310ms"
    )
    assert worst(lines) is Grade.YELLOW


# --------------------------------------------------------------------------- member time


def test_last_applied_wall_time_is_preferred_over_optime_date(
    spec: MongoReplicationLagSpec,
) -> None:
    status, config = replies("4.4-healthy", "4.4-healthy")
    # The fixture's db2: optimeDate 01:59:59 (1000 ms behind by whole seconds), wall time
    # 01:59:59.813 (310 ms behind).
    assert member(status, "db2:27017")["optimeDate"] == at("2026-11-22T01:59:59")
    assert graded(status, config, spec)[1] == ("- Secondary db2:27017 replication lag 310ms", G)


def test_optime_date_is_used_when_no_member_has_a_wall_time(
    spec: MongoReplicationLagSpec,
) -> None:
    status, config = replies("4.4-healthy", "4.4-healthy")
    for m in status["members"]:
        del m["lastAppliedWallTime"]
    assert graded(status, config, spec) == [
        ("- Primary db1:27017 replication lag 0ms", G),
        ("- Secondary db2:27017 replication lag 1000ms", G),
        ("- Secondary db3:27017 replication lag 0ms", G),
    ]


def test_optime_date_is_used_for_the_one_member_without_a_wall_time(
    spec: MongoReplicationLagSpec,
) -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")
    del member(status, "db2:27017")["lastAppliedWallTime"]
    # primary wall time 02:00:00.123 - db2 optimeDate 01:59:59
    assert graded(status, config, spec)[1] == ("- Secondary db2:27017 replication lag 1123ms", G)


@pytest.mark.parametrize(
    ("wall_time", "expected"),
    [
        pytest.param("2026-11-22T02:00:00.123", ("replication lag 0ms", G), id="0ms"),
        pytest.param("2026-11-22T01:59:55.124", ("replication lag 4999ms", G), id="4999ms"),
        pytest.param("2026-11-22T01:59:55.123", ("replication lag 5000ms", Y), id="5000ms"),
        pytest.param("2026-11-22T01:59:30.124", ("replication lag 29999ms", Y), id="29999ms"),
        pytest.param("2026-11-22T01:59:30.123", ("replication lag 30000ms", R), id="30000ms"),
        pytest.param("2026-11-21T02:00:00.123", ("replication lag 86400000ms", R), id="1-day"),
    ],
)
def test_lag_boundaries_from_wall_times(
    wall_time: str, expected: tuple[str, Grade], spec: MongoReplicationLagSpec
) -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")
    member(status, "db2:27017")["lastAppliedWallTime"] = at(wall_time)
    text, grade = expected
    assert graded(status, config, spec)[1] == (f"- Secondary db2:27017 {text}", grade)
    assert overall(status, config, spec) is grade


@pytest.mark.parametrize(
    ("optime_date", "expected"),
    [
        pytest.param("2026-11-22T01:59:56", ("replication lag 4000ms", G), id="4000ms"),
        pytest.param("2026-11-22T01:59:55", ("replication lag 5000ms", Y), id="5000ms"),
        pytest.param("2026-11-22T01:59:31", ("replication lag 29000ms", Y), id="29000ms"),
        pytest.param("2026-11-22T01:59:30", ("replication lag 30000ms", R), id="30000ms"),
    ],
)
def test_lag_boundaries_from_whole_second_optime_dates_of_4_0(
    optime_date: str, expected: tuple[str, Grade], spec: MongoReplicationLagSpec
) -> None:
    status, config = replies("4.0-healthy", "4.0-healthy")
    member(status, "db2:27017")["optimeDate"] = at(optime_date)
    text, grade = expected
    assert graded(status, config, spec)[1] == (f"- Secondary db2:27017 {text}", grade)
    assert overall(status, config, spec) is grade


@pytest.mark.parametrize(
    "wall_time",
    [
        pytest.param("2026-11-22T02:00:00.124", id="1ms-ahead"),
        pytest.param("2026-11-22T02:00:10.123", id="10s-ahead"),
        pytest.param("2026-11-22T03:00:00.000", id="1h-ahead"),
    ],
)
def test_clock_skew_secondary_ahead_of_primary_is_clamped_to_zero(
    wall_time: str, spec: MongoReplicationLagSpec
) -> None:
    # Never abs(): a secondary ahead of the primary is not lagging.
    status, config = replies("7.0-healthy", "7.0-healthy")
    member(status, "db3:27017")["lastAppliedWallTime"] = at(wall_time)
    assert graded(status, config, spec)[2] == ("- Secondary db3:27017 replication lag 0ms", G)
    assert overall(status, config, spec) is Grade.GREEN


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            {"lastAppliedWallTime": EPOCH, "optimeDate": EPOCH}, id="both-times-1970-epoch"
        ),
        pytest.param({"lastAppliedWallTime": None, "optimeDate": None}, id="both-times-missing"),
        pytest.param({"lastAppliedWallTime": None, "optimeDate": EPOCH}, id="wall-missing-1970"),
        pytest.param({"lastAppliedWallTime": EPOCH, "optimeDate": None}, id="1970-date-missing"),
        pytest.param(
            {"lastAppliedWallTime": "2026-11-22T02:00:00Z", "optimeDate": 1795312800},
            id="times-not-dates",
        ),
    ],
)
def test_member_without_an_optime_is_red_lag_unknown(
    change: dict[str, Any], spec: MongoReplicationLagSpec
) -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")
    db2 = member(status, "db2:27017")
    for key, value in change.items():
        if value is None:
            del db2[key]
        else:
            db2[key] = value
    assert graded(status, config, spec) == [
        ("- Primary db1:27017 replication lag 0ms", G),
        ("- Secondary db2:27017 lag unknown: no optime", R),
        ("- Secondary db3:27017 replication lag 87ms", G),
    ]
    reading = measure_replica_set(status, config).members[1]
    assert (reading.lag_ms, reading.no_optime) == (None, True)
    assert overall(status, config, spec) is Grade.RED


def test_member_without_an_optime_on_4_0(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("4.0-healthy", "4.0-healthy")
    member(status, "db3:27017")["optimeDate"] = EPOCH
    assert graded(status, config, spec)[2] == ("- Secondary db3:27017 lag unknown: no optime", R)


def test_epoch_wall_time_falls_back_to_optime_date(spec: MongoReplicationLagSpec) -> None:
    # Not specified: a 1970 lastAppliedWallTime beside a real optimeDate. Current behaviour:
    # the 1970 value counts as absent and optimeDate (01:59:59) is used.
    status, config = replies("7.0-healthy", "7.0-healthy")
    member(status, "db2:27017")["lastAppliedWallTime"] = EPOCH
    assert graded(status, config, spec)[1] == ("- Secondary db2:27017 replication lag 1123ms", G)


def test_primary_without_an_optime_measures_against_the_newest_secondary(
    spec: MongoReplicationLagSpec,
) -> None:
    # Not specified (a primary always has an optime in practice). Current behaviour: the
    # newest secondary (db3, 02:00:00.036) becomes the reference, without a "No primary" line.
    status, config = replies("7.0-healthy", "7.0-healthy")
    primary = member(status, "db1:27017")
    primary["lastAppliedWallTime"] = EPOCH
    primary["optimeDate"] = EPOCH
    observation = measure_replica_set(status, config)
    assert (observation.has_primary, observation.reference_name) == (True, "db3:27017")
    assert graded(status, config, spec) == [
        ("- Primary db1:27017 replication lag 0ms", G),
        ("- Secondary db2:27017 replication lag 937ms", G),
        ("- Secondary db3:27017 replication lag 0ms", G),
    ]


@pytest.fixture(params=["UTC", "America/New_York", "Asia/Kolkata"])
def local_time_zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test with the process's local time zone set to `request.param`."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    try:
        yield str(request.param)
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


def _make_aware(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC)
    if isinstance(value, dict):
        return {k: _make_aware(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_make_aware(v) for v in value]
    return value


@pytest.mark.parametrize("aware", [False, True], ids=["naive-dates", "tz-aware-dates"])
def test_dates_are_utc_whatever_the_local_time_zone(
    local_time_zone: str, aware: bool, spec: MongoReplicationLagSpec
) -> None:
    # PyMongo returns naive UTC datetimes by default (tz_aware=False); a client configured
    # with tz_aware=True returns aware ones. The 1970 epoch must read as "no optime" either way.
    status, config = replies("7.0-healthy", "7.0-healthy")
    member(status, "db3:27017").update({"lastAppliedWallTime": EPOCH, "optimeDate": EPOCH})
    if aware:
        status = _make_aware(status)
    assert graded(status, config, spec) == [
        ("- Primary db1:27017 replication lag 0ms", G),
        ("- Secondary db2:27017 replication lag 1024ms", G),
        ("- Secondary db3:27017 lag unknown: no optime", R),
    ]


# --------------------------------------------------------------------------- delayed / hidden


@pytest.mark.parametrize(
    ("wall_time", "expected"),
    [
        pytest.param("2026-11-22T00:59:58.123", ("replication lag 2000ms", G), id="2000ms"),
        pytest.param("2026-11-22T00:59:55.124", ("replication lag 4999ms", G), id="4999ms"),
        pytest.param("2026-11-22T00:59:55.123", ("replication lag 5000ms", Y), id="5000ms"),
        pytest.param("2026-11-22T00:59:30.124", ("replication lag 29999ms", Y), id="29999ms"),
        pytest.param("2026-11-22T00:59:30.123", ("replication lag 30000ms", R), id="30000ms"),
        pytest.param("2026-11-22T01:00:00.123", ("replication lag 0ms", G), id="exactly-delay"),
        pytest.param("2026-11-22T01:30:00.123", ("replication lag 0ms", G), id="within-delay"),
    ],
)
def test_secondary_delay_secs_is_subtracted(
    wall_time: str, expected: tuple[str, Grade], spec: MongoReplicationLagSpec
) -> None:
    status, config = replies("7.0-delayed-hidden", "7.0-delayed-hidden")
    member(status, "db4:27017")["lastAppliedWallTime"] = at(wall_time)
    text, grade = expected
    assert graded(status, config, spec)[3] == (
        f"- Secondary db4:27017 (hidden, delayed 3600s) {text}",
        grade,
    )
    assert overall(status, config, spec) is grade


@pytest.mark.parametrize(
    ("wall_time", "expected"),
    [
        pytest.param("2026-11-22T00:59:58.623", ("replication lag 1500ms", G), id="1500ms"),
        pytest.param("2026-11-22T00:59:55.123", ("replication lag 5000ms", Y), id="5000ms"),
        pytest.param("2026-11-22T00:59:25.000", ("replication lag 35123ms", R), id="35123ms"),
        pytest.param("2026-11-22T01:59:59.000", ("replication lag 0ms", G), id="within-delay"),
    ],
)
def test_pre_5_0_slave_delay_is_subtracted(
    wall_time: str, expected: tuple[str, Grade], spec: MongoReplicationLagSpec
) -> None:
    status, config = replies("4.4-delayed", "4.4-delayed")
    member(status, "db3:27017")["lastAppliedWallTime"] = at(wall_time)
    text, grade = expected
    assert graded(status, config, spec)[2] == (
        f"- Secondary db3:27017 (hidden, delayed 3600s) {text}",
        grade,
    )


def test_pre_5_0_slave_delay_with_optime_date_only(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("4.0-healthy", "4.0-healthy")
    member(config, "db3:27017")["slaveDelay"] = 600
    member(status, "db3:27017")["optimeDate"] = at("2026-11-22T01:49:53")
    # 02:00:00 - 01:49:53 - 600 s = 7 s
    assert graded(status, config, spec)[2] == (
        "- Secondary db3:27017 (delayed 600s) replication lag 7000ms",
        Y,
    )


@pytest.mark.parametrize(
    ("config_change", "expected_line"),
    [
        pytest.param(
            {"hidden": False},
            "- Secondary db4:27017 (delayed 3600s) replication lag 2000ms",
            id="delayed-not-hidden",
        ),
        pytest.param(
            {"secondaryDelaySecs": 0},
            # no delay: the whole 02:00:00.123 - 00:59:58.123 is lag
            "- Secondary db4:27017 (hidden) replication lag 3602000ms",
            id="hidden-not-delayed",
        ),
        pytest.param(
            {"secondaryDelaySecs": 3600.0},
            "- Secondary db4:27017 (hidden, delayed 3600s) replication lag 2000ms",
            id="delay-as-a-double",
        ),
        pytest.param(
            {"secondaryDelaySecs": 1209600},
            "- Secondary db4:27017 (hidden, delayed 1209600s) replication lag 0ms",
            id="14-day-delay-written-in-seconds",
        ),
        pytest.param(
            {"secondaryDelaySecs": 3602, "slaveDelay": 60},
            "- Secondary db4:27017 (hidden, delayed 3602s) replication lag 0ms",
            id="secondaryDelaySecs-wins-over-slaveDelay",
        ),
    ],
)
def test_hidden_and_delayed_labels(
    config_change: dict[str, Any], expected_line: str, spec: MongoReplicationLagSpec
) -> None:
    status, config = replies("7.0-delayed-hidden", "7.0-delayed-hidden")
    member(config, "db4:27017").update(config_change)
    assert graded(status, config, spec)[3][0] == expected_line


def test_member_absent_from_config_has_no_delay_and_is_not_hidden(
    spec: MongoReplicationLagSpec,
) -> None:
    status, config = replies("7.0-delayed-hidden", "7.0-delayed-hidden")
    config["config"]["members"] = [
        m for m in config["config"]["members"] if m["host"] != "db4:27017"
    ]
    assert graded(status, config, spec)[3] == (
        "- Secondary db4:27017 replication lag 3602000ms",
        R,
    )
    reading = measure_replica_set(status, config).members[3]
    assert (reading.hidden, reading.delay_s) == (False, 0.0)


def test_labels_on_unreachable_and_transitional_members(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("7.0-delayed-hidden", "7.0-delayed-hidden")
    member(status, "db3:27017").update({"health": 0.0, "state": 8, "stateStr": "DOWN"})
    member(status, "db4:27017").update({"state": 3, "stateStr": "RECOVERING"})
    assert graded(status, config, spec)[2:] == [
        ("- Secondary db3:27017 (hidden) unreachable", R),
        ("- Member db4:27017 (hidden, delayed 3600s) in state RECOVERING", Y),
        # db1 and db2 are the healthy voters left (db4 has no vote)
        NO_MEMBER_TO_LOSE,
    ]


# --------------------------------------------------------------------------- member states


def test_arbiter_is_listed_not_graded_and_the_set_grades_on_data_members(
    spec: MongoReplicationLagSpec,
) -> None:
    status, config = replies("7.0-arbiter", "7.0-arbiter")
    member(status, "db2:27017")["lastAppliedWallTime"] = at("2026-11-22T01:59:52.123")
    assert graded(status, config, spec) == [
        ("- Primary db1:27017 replication lag 0ms", G),
        ("- Secondary db2:27017 replication lag 8000ms", Y),
        ("- Arbiter db3:27017 (not graded: holds no data)", None),
        NO_MEMBER_TO_LOSE,
    ]
    assert overall(status, config, spec) is Grade.YELLOW
    reading = measure_replica_set(status, config).members[2]
    assert (reading.condition, reading.lag_ms, reading.arbiter_only) == ("arbiter", None, True)


def test_unreachable_arbiter_is_red(spec: MongoReplicationLagSpec) -> None:
    # An arbiter the primary cannot reach is reported in state 8, not 7: the "unreachable"
    # rule matches (ARCHITECTURE.md: first match wins), labelled with its config role.
    status, config = replies("7.0-arbiter", "7.0-arbiter")
    member(status, "db3:27017").update(
        {"health": 0.0, "state": 8, "stateStr": "(not reachable/healthy)"}
    )
    assert graded(status, config, spec)[2] == ("- Arbiter db3:27017 unreachable", R)
    assert overall(status, config, spec) is Grade.RED


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            {"health": 0.0, "state": 8, "stateStr": "(not reachable/healthy)"},
            id="health-0-state-8-as-servers-report",
        ),
        pytest.param({"health": 0}, id="health-0-only"),
        pytest.param({"health": 0.0, "state": 2}, id="health-0.0-still-secondary"),
        pytest.param({"state": 8, "stateStr": "DOWN"}, id="state-8-DOWN"),
        pytest.param({"state": 6, "stateStr": "UNKNOWN"}, id="state-6-UNKNOWN"),
        pytest.param({"health": 0, "state": 3, "stateStr": "RECOVERING"}, id="health-0-wins"),
    ],
)
def test_unreachable_member_is_red_without_a_lag_number(
    change: Doc, spec: MongoReplicationLagSpec
) -> None:
    # db2 keeps its recorded wall time (1024 ms behind): it must not turn into a lag.
    status, config = replies("7.0-healthy", "7.0-healthy")
    member(status, "db2:27017").update(change)
    assert graded(status, config, spec) == [
        ("- Primary db1:27017 replication lag 0ms", G),
        ("- Secondary db2:27017 unreachable", R),
        ("- Secondary db3:27017 replication lag 87ms", G),
        NO_MEMBER_TO_LOSE,
    ]
    reading = measure_replica_set(status, config).members[1]
    assert (reading.condition, reading.lag_ms) == ("unreachable", None)
    assert overall(status, config, spec) is Grade.RED


@pytest.mark.parametrize(
    ("state", "state_str"),
    [
        pytest.param(0, "STARTUP", id="STARTUP"),
        pytest.param(5, "STARTUP2", id="STARTUP2"),
        pytest.param(3, "RECOVERING", id="RECOVERING"),
        pytest.param(9, "ROLLBACK", id="ROLLBACK"),
        pytest.param(10, "REMOVED", id="REMOVED"),
    ],
)
def test_transitional_states_are_yellow_with_the_state_name(
    state: int, state_str: str, spec: MongoReplicationLagSpec
) -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")
    member(status, "db2:27017").update({"state": state, "stateStr": state_str})
    assert graded(status, config, spec) == [
        ("- Primary db1:27017 replication lag 0ms", G),
        (f"- Member db2:27017 in state {state_str}", Y),
        ("- Secondary db3:27017 replication lag 87ms", G),
        NO_MEMBER_TO_LOSE,
    ]
    reading = measure_replica_set(status, config).members[1]
    assert (reading.condition, reading.lag_ms) == ("transitional", None)
    assert overall(status, config, spec) is Grade.YELLOW


def test_transitional_state_name_comes_from_the_state_number(
    spec: MongoReplicationLagSpec,
) -> None:
    # STARTUP2 with a server-specific stateStr still reads as the documented state name.
    status, config = replies("7.0-healthy", "7.0-healthy")
    member(status, "db3:27017").update({"state": 5, "stateStr": "initial sync"})
    assert graded(status, config, spec)[2] == ("- Member db3:27017 in state STARTUP2", Y)


# --------------------------------------------------------------------------- no primary


def test_no_primary_line_comes_first_and_is_red(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("7.0-no-primary", "7.0-healthy")
    lines = grade_mongo_replication_lag(measure_replica_set(status, config), spec)
    assert lines[0].text.startswith("- No primary")
    assert lines[0].grade is Grade.RED
    # "No primary", one line per member, the majority line
    assert len(lines) == 1 + len(status["members"]) + 1
    observation = measure_replica_set(status, config)
    assert (observation.has_primary, observation.reference_name) == (False, "db2:27017")


def test_no_primary_reference_is_the_newest_secondary_not_the_replying_one(
    spec: MongoReplicationLagSpec,
) -> None:
    status, config = replies("7.0-no-primary", "7.0-healthy")
    member(status, "db3:27017")["lastAppliedWallTime"] = at("2026-11-22T02:00:01.000")
    assert graded(status, config, spec) == [
        ("- No primary: lags measured against the newest secondary db3:27017", R),
        (f"- Secondary db1:27017 unreachable: {DB1_REFUSED}", R),
        # 02:00:01.000 - 02:00:00.123
        ("- Secondary db2:27017 replication lag 877ms", G),
        ("- Secondary db3:27017 replication lag 0ms", G),
        NO_MEMBER_TO_LOSE,
    ]


def test_no_primary_reference_skips_a_newer_transitional_member(
    spec: MongoReplicationLagSpec,
) -> None:
    status, config = replies("7.0-no-primary", "7.0-healthy")
    # db3 is newest but RECOVERING: it is no reference (and db1, down, is newer still)
    member(status, "db3:27017").update(
        {
            "state": 3,
            "stateStr": "RECOVERING",
            "lastAppliedWallTime": at("2026-11-22T02:00:05.000"),
        }
    )
    assert graded(status, config, spec) == [
        ("- No primary: lags measured against the newest secondary db2:27017", R),
        (f"- Secondary db1:27017 unreachable: {DB1_REFUSED}", R),
        ("- Secondary db2:27017 replication lag 0ms", G),
        ("- Member db3:27017 in state RECOVERING", Y),
        # db2 is the only healthy voter left
        ("- majority writes impossible: 1 of 2 needed", R),
    ]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({}, id="state-8-as-recorded"),
        pytest.param({"state": 2, "stateStr": "SECONDARY"}, id="state-2-health-0"),
    ],
)
def test_no_primary_reference_skips_a_newer_unhealthy_member(
    change: Doc, spec: MongoReplicationLagSpec
) -> None:
    # db1 (health 0) reports the newest time of all, 02:00:00.500: it is no reference.
    status, config = replies("7.0-no-primary", "7.0-healthy")
    member(status, "db1:27017").update(change)
    assert member(status, "db1:27017")["lastAppliedWallTime"] == at("2026-11-22T02:00:00.500")
    assert graded(status, config, spec) == [
        ("- No primary: lags measured against the newest secondary db2:27017", R),
        (f"- Secondary db1:27017 unreachable: {DB1_REFUSED}", R),
        ("- Secondary db2:27017 replication lag 0ms", G),
        ("- Secondary db3:27017 replication lag 7000ms", Y),
        NO_MEMBER_TO_LOSE,
    ]


def test_no_primary_and_no_optime_anywhere(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("7.0-no-primary", "7.0-healthy")
    for name in ("db2:27017", "db3:27017"):
        member(status, name).update({"lastAppliedWallTime": EPOCH, "optimeDate": EPOCH})
    assert graded(status, config, spec) == [
        ("- No primary: no member has an optime to measure lag against", R),
        (f"- Secondary db1:27017 unreachable: {DB1_REFUSED}", R),
        ("- Secondary db2:27017 lag unknown: no reference optime", R),
        ("- Secondary db3:27017 lag unknown: no reference optime", R),
        NO_MEMBER_TO_LOSE,
    ]
    assert overall(status, config, spec) is Grade.RED


def test_no_primary_is_red_even_when_every_secondary_is_green(
    spec: MongoReplicationLagSpec,
) -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")
    member(status, "db1:27017").update({"state": 2, "stateStr": "SECONDARY"})
    lines = graded(status, config, spec)
    assert lines == [
        ("- No primary: lags measured against the newest secondary db1:27017", R),
        ("- Secondary db1:27017 replication lag 0ms", G),
        ("- Secondary db2:27017 replication lag 1024ms", G),
        ("- Secondary db3:27017 replication lag 87ms", G),
    ]
    assert overall(status, config, spec) is Grade.RED


# --------------------------------------------------------------------------- spec and order


@pytest.mark.parametrize(
    ("thresholds", "expected", "expected_overall"),
    [
        pytest.param(
            {"yellow": 1000, "red": 2000},
            [("replication lag 1024ms", Y), ("replication lag 87ms", G)],
            Y,
            id="yellow-1000-red-2000",
        ),
        pytest.param(
            {"yellow": 50, "red": 1000},
            [("replication lag 1024ms", R), ("replication lag 87ms", Y)],
            R,
            id="yellow-50-red-1000",
        ),
        pytest.param(
            {"yellow": 87, "red": 1024},
            [("replication lag 1024ms", R), ("replication lag 87ms", Y)],
            R,
            id="bounds-inclusive",
        ),
        pytest.param(
            {"yellow": 1025, "red": 90000},
            [("replication lag 1024ms", G), ("replication lag 87ms", G)],
            G,
            id="yellow-1025",
        ),
    ],
)
def test_spec_thresholds_override_the_defaults(
    thresholds: dict[str, float],
    expected: list[tuple[str, Grade]],
    expected_overall: Grade,
    make_spec: SpecFactory,
) -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")
    custom = make_spec(thresholds=thresholds)
    (db2_text, db2_grade), (db3_text, db3_grade) = expected
    assert graded(status, config, custom) == [
        ("- Primary db1:27017 replication lag 0ms", G),
        (f"- Secondary db2:27017 {db2_text}", db2_grade),
        (f"- Secondary db3:27017 {db3_text}", db3_grade),
    ]
    assert overall(status, config, custom) is expected_overall


def test_lines_follow_the_status_member_order(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("7.0-delayed-hidden", "7.0-delayed-hidden")
    status["members"].reverse()
    assert [text for text, _ in graded(status, config, spec)] == [
        "- Secondary db4:27017 (hidden, delayed 3600s) replication lag 2000ms",
        "- Secondary db3:27017 (hidden) replication lag 800ms",
        "- Secondary db2:27017 replication lag 250ms",
        "- Primary db1:27017 replication lag 0ms",
    ]


def test_config_member_order_does_not_matter(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("7.0-delayed-hidden", "7.0-delayed-hidden")
    config["config"]["members"].reverse()
    assert [text for text, _ in graded(status, config, spec)] == [
        "- Primary db1:27017 replication lag 0ms",
        "- Secondary db2:27017 replication lag 250ms",
        "- Secondary db3:27017 (hidden) replication lag 800ms",
        "- Secondary db4:27017 (hidden, delayed 3600s) replication lag 2000ms",
    ]


def test_grading_twice_gives_the_same_lines(spec: MongoReplicationLagSpec) -> None:
    status, config = replies("7.0-member-down", "7.0-healthy")
    observation = measure_replica_set(status, config)
    assert grade_mongo_replication_lag(observation, spec) == grade_mongo_replication_lag(
        observation, spec
    )


# --------------------------------------------------------------------------- malformed replies


def _drop_members(status: Doc) -> None:
    del status["members"]


def _members_not_a_list(status: Doc) -> None:
    status["members"] = {"0": status["members"][0]}


def _members_empty(status: Doc) -> None:
    status["members"] = []


def _member_not_a_document(status: Doc) -> None:
    status["members"][1] = "db2:27017"


def _member_without_name(status: Doc) -> None:
    del status["members"][1]["name"]


def _member_without_state(status: Doc) -> None:
    del status["members"][2]["state"]


def _state_is_a_word(status: Doc) -> None:
    status["members"][1]["state"] = "SECONDARY"


def _state_is_null(status: Doc) -> None:
    status["members"][1]["state"] = None


def _health_is_a_word(status: Doc) -> None:
    status["members"][1]["health"] = "ok"


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        pytest.param(_drop_members, "no members list", id="no-members"),
        pytest.param(_members_not_a_list, "no members list", id="members-not-a-list"),
        pytest.param(_members_empty, "no members list", id="members-empty"),
        pytest.param(_member_not_a_document, "member #1 lacks name or state", id="not-a-doc"),
        pytest.param(_member_without_name, "member #1 lacks name or state", id="no-name"),
        pytest.param(_member_without_state, "member #2 lacks name or state", id="no-state"),
        pytest.param(_state_is_a_word, "'SECONDARY' is not a number", id="state-a-word"),
        pytest.param(_state_is_null, "None is not a number", id="state-null"),
        pytest.param(_health_is_a_word, "'ok' is not a number", id="health-a-word"),
    ],
)
def test_malformed_status_reply_raises_probe_reply_error(
    breaks: Callable[[Doc], None], message: str
) -> None:
    status, config = replies("7.0-healthy", "7.0-healthy")
    breaks(status)
    with pytest.raises(ProbeReplyError, match=message) as caught:
        measure_replica_set(status, config)
    assert str(caught.value).startswith("malformed replSetGetStatus reply: ")
    assert caught.value.reached_target is True
