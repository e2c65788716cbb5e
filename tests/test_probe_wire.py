"""The mongo_replication_lag probe over real TCP, against a simulated replica set.

Every test goes through `Engine.run_once`, so the connection label, the shared client, the
probe, the error mapping, the grading, the store and the metrics are all on the path.
Expectations come from ARCHITECTURE.md (grading bands, line shapes, error lines).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.grading import Grade
from tests.conftest import EngineFactory, SpecFactory
from tests.mongo_helpers import (
    DRIVER_SOCKET_LEAK,
    collect_leaked_driver_sockets,  # noqa: F401 - autouse
)
from zeroprobe.engine.core import Engine
from zeroprobe.engine.store import Result
from zeroprobe.simulators.mongo import SimulatedReplicaSet

SERVICE_ID = "test.mongo.lag"  # the make_spec default
CONNECTION_VAR = "ZEROPROBE_CONNECTION_RS"  # the make_spec default label "rs"
LAG_METRIC = "zeroprobe_mongo_replication_lag_seconds"
SPEC_TIMEOUT_S = 1.0  # the make_spec default timeout
# How much later than the spec's timeout a run may finish (scheduling, thread hand-offs).
SLACK_S = 0.3

# PyMongo 4.20 does not close a socket whose connect is cancelled when the client closes while
# a monitor is retrying an unreachable member (upstream PYTHON-5867); the garbage collector
# closes it later with a ResourceWarning, which `filterwarnings = error` would turn into a
# failure of whatever test runs then. Only that warning is ignored, and only in this module,
# whose tests collect such sockets before they end. "Unclosed AsyncMongoClient" still fails.
pytestmark = pytest.mark.filterwarnings(DRIVER_SOCKET_LEAK)


@contextlib.asynccontextmanager
async def engine_for(
    make_engine: EngineFactory, make_spec: SpecFactory, uri: str | None, **spec: Any
) -> AsyncIterator[Engine]:
    """An engine with one spec whose connection variable holds `uri` (None: unset)."""
    environ = {CONNECTION_VAR: uri} if uri is not None else {}
    engine = make_engine([make_spec(**spec)], environ)
    try:
        yield engine
    finally:
        await engine.stop()


async def timed_run(engine: Engine) -> tuple[Result, float]:
    """Run the spec once; the result and how long the run took (seconds)."""
    started = time.perf_counter()
    result = await engine.run_once(SERVICE_ID)
    return result, time.perf_counter() - started


def texts(result: Result) -> list[str]:
    """The actionBody lines of a result."""
    return [line.text for line in result.lines]


def line_of(result: Result, host: str) -> str:
    """The one member line of `host`: `- <Role> <host> ...`."""
    matching = [text for text in texts(result) if text.split()[2:3] == [host]]
    assert len(matching) == 1, (host, texts(result))
    return matching[0]


def lag_series(engine: Engine) -> dict[str, float]:
    """member -> value of the lag gauge of SERVICE_ID, parsed from the text exposition."""
    series: dict[str, float] = {}
    for family in text_string_to_metric_families(engine.metrics.render().decode()):
        if family.name != LAG_METRIC:
            continue
        for sample in family.samples:
            if sample.labels.get("service_id") == SERVICE_ID:
                series[sample.labels["member"]] = sample.value
    return series


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def assert_not_measured(result: Result) -> None:
    """A run that could not measure: RED, and no line claims a lag."""
    assert result.grade is Grade.RED, texts(result)
    assert result.lines, "a RED result must say why"
    assert all(line.grade is Grade.RED for line in result.lines), texts(result)
    assert not any("replication lag" in text for text in texts(result)), texts(result)


# Healthy sets -----------------------------------------------------------------------------


async def test_healthy_set_found_by_replica_set_discovery_from_one_seed(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    replica_set.set_lag_ms(1, 1200)
    replica_set.set_lag_ms(2, 300)
    h0, h1, h2 = replica_set.hosts
    # Only a secondary as seed: the driver must discover the primary from the hello replies.
    uri = f"mongodb://{h2}/?replicaSet={replica_set.set_name}"
    async with engine_for(make_engine, make_spec, uri) as engine:
        result = await engine.run_once(SERVICE_ID)

    assert texts(result) == [
        f"- Primary {h0} replication lag 0ms",
        f"- Secondary {h1} replication lag 1200ms",
        f"- Secondary {h2} replication lag 300ms",
        # The simulated primary's oplog spans 26h 14m; h1, 1.2 s behind, has the least room.
        f"- oplog window 26h 14m on {h0}; least headroom 26h 13m ({h1})",
    ]
    assert result.grade is Grade.GREEN
    assert result.reached_target is True
    assert engine.store.newest(SERVICE_ID) is result
    assert json.loads(result.document) == {
        SERVICE_ID: {
            "status": "GREEN",
            "timestamp": result.collected_at_ms,
            "messages": [
                {
                    "statusCode": "",
                    "statusBody": SERVICE_ID,
                    "actionCode": "",
                    "actionBody": "\n".join(texts(result)),
                }
            ],
        }
    }


async def test_healthy_set_through_a_direct_connection_to_one_secondary(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    replica_set.set_lag_ms(2, 2500)
    h0, h1, h2 = replica_set.hosts
    async with engine_for(make_engine, make_spec, replica_set.direct_uri(1)) as engine:
        result = await engine.run_once(SERVICE_ID)

    assert texts(result) == [
        f"- Primary {h0} replication lag 0ms",
        f"- Secondary {h1} replication lag 0ms",
        f"- Secondary {h2} replication lag 2500ms",
        # Not graded: the window is read on the primary, which this connection cannot reach.
        f"- oplog window unknown: read on the primary only, and {h1}, not the primary, answered",
    ]
    assert result.lines[-1].grade is None
    assert result.grade is Grade.GREEN
    assert result.reached_target is True


# Grading over the wire --------------------------------------------------------------------


async def test_lag_bands_are_half_open_over_the_wire(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    h1 = replica_set.hosts[1]
    cases = [
        (0, Grade.GREEN),
        (4999, Grade.GREEN),
        (5000, Grade.YELLOW),
        (29999, Grade.YELLOW),
        (30000, Grade.RED),
        (45000, Grade.RED),
    ]
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        for lag_ms, expected in cases:
            replica_set.set_lag_ms(1, lag_ms)
            result = await engine.run_once(SERVICE_ID)
            assert line_of(result, h1) == f"- Secondary {h1} replication lag {lag_ms}ms"
            assert result.grade is expected, (lag_ms, texts(result))
            graded = {line.text: line.grade for line in result.lines}
            assert graded[f"- Secondary {h1} replication lag {lag_ms}ms"] is expected


async def test_thresholds_from_the_spec_replace_the_defaults(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    thresholds = {"yellow": 1000, "red": 2000}
    cases = [(999, Grade.GREEN), (1000, Grade.YELLOW), (1999, Grade.YELLOW), (2000, Grade.RED)]
    async with engine_for(make_engine, make_spec, replica_set.uri, thresholds=thresholds) as engine:
        for lag_ms, expected in cases:
            replica_set.set_lag_ms(2, lag_ms)
            result = await engine.run_once(SERVICE_ID)
            assert result.grade is expected, (lag_ms, texts(result))


async def test_delayed_member_is_graded_after_its_delay_and_labelled(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    h0, h1, h2 = replica_set.hosts
    replica_set.members[2].delay_s = 3600  # applies an hour behind on purpose
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        replica_set.set_lag_ms(2, 0)
        on_time = await engine.run_once(SERVICE_ID)
        replica_set.set_lag_ms(2, 6000)
        late = await engine.run_once(SERVICE_ID)

    # An hour behind is exactly its delay: no lag beyond it.
    assert on_time.grade is Grade.GREEN, texts(on_time)
    delayed_line = line_of(on_time, h2)
    assert "delayed" in delayed_line
    assert delayed_line.endswith("replication lag 0ms")
    # 6 s beyond the delay: YELLOW (not RED, which the raw 3606 s would be).
    assert late.grade is Grade.YELLOW, texts(late)
    assert "delayed" in line_of(late, h2)
    assert line_of(late, h2).endswith("replication lag 6000ms")
    # Only the delayed member is labelled.
    assert "delayed" not in line_of(late, h0)
    assert "delayed" not in line_of(late, h1)


async def test_hidden_member_is_labelled(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    h0, h1, h2 = replica_set.hosts
    replica_set.members[1].hidden = True
    replica_set.set_lag_ms(1, 700)
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        result = await engine.run_once(SERVICE_ID)

    assert result.grade is Grade.GREEN, texts(result)
    assert "hidden" in line_of(result, h1)
    assert line_of(result, h1).endswith("replication lag 700ms")
    assert "hidden" not in line_of(result, h0)
    assert "hidden" not in line_of(result, h2)


# Members going away -----------------------------------------------------------------------


async def test_primary_down_is_red_not_reached_and_recovers_after_restart(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        healthy = await engine.run_once(SERVICE_ID)
        assert healthy.grade is Grade.GREEN, texts(healthy)
        assert all(check.ok for check in engine.liveness())

        replica_set.stop_member(0)
        # The first run may hit the pooled connection, the next must select a server again:
        # both must be RED without a measurement, within the spec's timeout.
        for _ in range(2):
            down, took_s = await timed_run(engine)
            assert_not_measured(down)
            assert down.reached_target is False, texts(down)
            assert took_s < SPEC_TIMEOUT_S + SLACK_S
        (check,) = engine.liveness()
        assert check.ok is False
        assert "not reached" in check.reason

        replica_set.restart_member(0)
        deadline = time.monotonic() + 8
        recovered = await engine.run_once(SERVICE_ID)
        while recovered.grade is not Grade.GREEN and time.monotonic() < deadline:
            recovered = await engine.run_once(SERVICE_ID)
        assert recovered.grade is Grade.GREEN, texts(recovered)
        assert recovered.reached_target is True
        assert texts(recovered)[0] == f"- Primary {replica_set.hosts[0]} replication lag 0ms"
        assert all(check.ok for check in engine.liveness())


@pytest.mark.parametrize("direct", [False, True], ids=["replica-set-uri", "direct-uri"])
async def test_all_members_down_says_connection_refused_within_the_timeout(
    replica_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    direct: bool,
) -> None:
    uri = replica_set.direct_uri(0) if direct else replica_set.uri
    replica_set.stop()
    async with engine_for(make_engine, make_spec, uri) as engine:
        result, took_s = await timed_run(engine)

    assert_not_measured(result)
    assert len(result.lines) == 1
    assert "connection refused" in result.lines[0].text.lower(), texts(result)
    # The driver's own error, not the runner's generic timeout, and before the timeout.
    assert result.outcome != "timeout", texts(result)
    assert took_s < SPEC_TIMEOUT_S, took_s
    assert result.reached_target is False


# Error replies ----------------------------------------------------------------------------


async def test_known_error_replies_each_get_their_own_plain_english_line(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    cases = [
        (76, "NoReplicationEnabled", "replication is off on this server", "--replSet"),
        (94, "NotYetInitialized", "no replset config has been received", "rs.initiate()"),
        (13, "Unauthorized", "not authorized on admin to execute command", "clusterMonitor"),
    ]
    lines: list[str] = []
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        for code, code_name, errmsg, phrase in cases:
            replica_set.fail("replSetGetStatus", code, code_name, errmsg)
            result = await engine.run_once(SERVICE_ID)
            replica_set.clear_failures()

            assert_not_measured(result)
            assert len(result.lines) == 1, texts(result)
            assert phrase in result.lines[0].text, (code, texts(result))
            # The server answered: the target was reached, so /liveness stays ok.
            assert result.reached_target is True, code
            assert all(check.ok for check in engine.liveness()), (code, engine.liveness())
            lines.append(result.lines[0].text)

        # Each error has its own line, and a cleared failure measures again.
        assert len(set(lines)) == len(cases)
        again = await engine.run_once(SERVICE_ID)
        assert again.grade is Grade.GREEN, texts(again)


async def test_an_unknown_error_reply_is_red_with_the_servers_reason(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    replica_set.fail(
        "replSetGetConfig", 59, "CommandNotFound", "no such command: 'replSetGetConfig'"
    )
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        result = await engine.run_once(SERVICE_ID)

    assert_not_measured(result)
    assert len(result.lines) == 1, texts(result)
    assert "CommandNotFound" in result.lines[0].text or "59" in result.lines[0].text
    assert result.reached_target is True


async def test_hung_server_is_red_within_about_the_timeout_and_recovers(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    async with engine_for(make_engine, make_spec, replica_set.direct_uri(0)) as engine:
        replica_set.reply_delay_s = SPEC_TIMEOUT_S + 0.5
        hung, took_s = await timed_run(engine)
        replica_set.reply_delay_s = 0.0
        # MockupDB answers one request at a time per server: the hung reply must end first.
        deadline = time.monotonic() + 5
        after = await engine.run_once(SERVICE_ID)
        while after.grade is not Grade.GREEN and time.monotonic() < deadline:
            after = await engine.run_once(SERVICE_ID)

    assert_not_measured(hung)
    assert took_s < SPEC_TIMEOUT_S + SLACK_S, took_s
    assert hung.reached_target is False
    # The timed-out connection does not poison the shared client.
    assert after.grade is Grade.GREEN, texts(after)


# Configuration and secrets ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "variable"),
    [
        ("rs", "ZEROPROBE_CONNECTION_RS"),
        ("cluster-keeper.eu", "ZEROPROBE_CONNECTION_CLUSTER_KEEPER_EU"),
    ],
)
async def test_unset_connection_variable_is_red_naming_the_variable(
    make_spec: SpecFactory, make_engine: EngineFactory, label: str, variable: str
) -> None:
    async with engine_for(make_engine, make_spec, None, connection=label) as engine:
        result, took_s = await timed_run(engine)

    assert_not_measured(result)
    assert variable in result.lines[0].text, texts(result)
    assert result.reached_target is False
    assert took_s < SPEC_TIMEOUT_S


PASSWORD = "s3cr3tpw"


def assert_password_nowhere(
    engine: Engine, result: Result, caplog: pytest.LogCaptureFixture
) -> None:
    """The password is in no response, line, log record, liveness reason or metric."""
    assert PASSWORD.encode() not in result.document
    assert not any(PASSWORD in text for text in texts(result))
    assert PASSWORD not in caplog.text
    assert not any(PASSWORD in record.getMessage() for record in caplog.records)
    assert not any(PASSWORD in check.reason for check in engine.liveness())
    assert PASSWORD.encode() not in engine.metrics.render()


async def test_password_of_an_unreachable_server_appears_nowhere(
    make_spec: SpecFactory, make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    uri = f"mongodb://admin:{PASSWORD}@127.0.0.1:{closed_port()}/?directConnection=true"
    async with engine_for(make_engine, make_spec, uri) as engine:
        result = await engine.run_once(SERVICE_ID)
        assert_password_nowhere(engine, result, caplog)

    assert_not_measured(result)
    assert "connection refused" in result.lines[0].text.lower(), texts(result)
    assert PASSWORD not in caplog.text  # nor in anything logged while stopping


async def test_password_of_a_failed_login_appears_nowhere(
    replica_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    replica_set.fail("saslStart", 18, "AuthenticationFailed", "Authentication failed.")
    uri = f"mongodb://admin:{PASSWORD}@{replica_set.hosts[0]}/?directConnection=true"
    async with engine_for(make_engine, make_spec, uri) as engine:
        result = await engine.run_once(SERVICE_ID)
        assert_password_nowhere(engine, result, caplog)

    assert_not_measured(result)
    assert "Authentication" in result.lines[0].text, texts(result)
    assert result.reached_target is True  # the server answered, with a refusal
    assert PASSWORD not in caplog.text


async def test_password_echoed_by_the_server_is_scrubbed_from_what_zeroprobe_says(
    replica_set: SimulatedReplicaSet,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # A careless server (or proxy) echoes the credentials in its error message.
    replica_set.fail(
        "saslStart", 18, "AuthenticationFailed", f"bad auth for mongodb://admin:{PASSWORD}@db1"
    )
    uri = f"mongodb://admin:{PASSWORD}@{replica_set.hosts[0]}/?directConnection=true"
    async with engine_for(make_engine, make_spec, uri) as engine:
        result = await engine.run_once(SERVICE_ID)
        liveness = engine.liveness()
        exposition = engine.metrics.render()

    assert_not_measured(result)
    assert "AuthenticationFailed" in result.lines[0].text, texts(result)
    assert PASSWORD.encode() not in result.document
    assert not any(PASSWORD in text for text in texts(result))
    assert not any(PASSWORD in check.reason for check in liveness)
    assert PASSWORD.encode() not in exposition
    # The driver's own debug records carry the raw server reply (the service's log handler
    # scrubs those); zeroprobe's own records must be clean already.
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("zeroprobe", "probes")]
    assert ours, "the RED transition is logged"
    assert not any(PASSWORD in record.getMessage() for record in ours)


# Recorded documents served over the wire --------------------------------------------------

RECORDED_AT = dt.datetime(2026, 5, 20, 3, 0, 0, 123000, tzinfo=dt.UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def recorded_member(
    member_id: int,
    name: str,
    state: int,
    state_str: str,
    behind_ms: int | None,
    *,
    health: int = 1,
) -> dict[str, Any]:
    """A replSetGetStatus member as a 7.0 server reports it."""
    member: dict[str, Any] = {
        "_id": member_id,
        "name": name,
        "health": health,
        "state": state,
        "stateStr": state_str,
        "uptime": 86400,
    }
    if behind_ms is None:  # no optime: the 1970 epoch
        member["optimeDate"] = EPOCH
        member["lastAppliedWallTime"] = EPOCH
    else:
        wall = RECORDED_AT - dt.timedelta(milliseconds=behind_ms)
        member["optimeDate"] = wall.replace(microsecond=0)
        member["lastAppliedWallTime"] = wall
    return member


def recorded_config(*hosts: str, arbiter: str | None = None) -> dict[str, Any]:
    """A replSetGetConfig reply for `hosts`."""
    return {
        "config": {
            "_id": "rs0",
            "version": 7,
            "members": [
                {
                    "_id": i,
                    "host": host,
                    "arbiterOnly": host == arbiter,
                    "hidden": False,
                    "priority": 0 if host == arbiter else 1,
                    "secondaryDelaySecs": 0,
                    "votes": 1,
                }
                for i, host in enumerate(hosts)
            ],
        }
    }


async def test_recorded_reply_without_a_primary_is_graded_against_the_newest_secondary(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    db1, db2, db3 = "db1.example.net:27017", "db2.example.net:27017", "db3.example.net:27017"
    replica_set.status_reply = {
        "set": "rs0",
        "date": RECORDED_AT,
        "myState": 2,
        "members": [
            recorded_member(0, db1, 8, "(not reachable/healthy)", None, health=0),
            recorded_member(1, db2, 2, "SECONDARY", 0),
            recorded_member(2, db3, 2, "SECONDARY", 7500),
        ],
    }
    replica_set.config_reply = recorded_config(db1, db2, db3)
    async with engine_for(make_engine, make_spec, replica_set.direct_uri(0)) as engine:
        result = await engine.run_once(SERVICE_ID)

    assert result.grade is Grade.RED, texts(result)
    assert result.reached_target is True
    no_primary = [line for line in result.lines if "no primary" in line.text.lower()]
    assert len(no_primary) == 1, texts(result)
    assert no_primary[0].grade is Grade.RED
    down = line_of(result, db1)
    assert "unreachable" in down
    assert not re.search(r"\d+ ?ms", down), down  # no lag number
    assert line_of(result, db2).endswith("replication lag 0ms")
    assert line_of(result, db3).endswith("replication lag 7500ms")
    graded = {line.text: line.grade for line in result.lines}
    assert graded[line_of(result, db3)] is Grade.YELLOW
    assert graded[down] is Grade.RED


async def test_recorded_reply_with_whole_second_optimes_and_an_arbiter(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    db1, db2, arb = "db1.example.net:27017", "db2.example.net:27017", "arb.example.net:27017"
    primary = recorded_member(0, db1, 1, "PRIMARY", 0)
    secondary = recorded_member(1, db2, 2, "SECONDARY", 6000)
    for member in (primary, secondary):  # an older server: optimeDate only, whole seconds
        del member["lastAppliedWallTime"]
    arbiter = {"_id": 2, "name": arb, "health": 1, "state": 7, "stateStr": "ARBITER"}
    replica_set.status_reply = {
        "set": "rs0",
        "myState": 1,
        "members": [primary, secondary, arbiter],
    }
    replica_set.config_reply = recorded_config(db1, db2, arb, arbiter=arb)
    async with engine_for(make_engine, make_spec, replica_set.direct_uri(0)) as engine:
        result = await engine.run_once(SERVICE_ID)

    # 03:00:00.123 and 02:59:54.123 truncate to 03:00:00 and 02:59:54: 6000 ms.
    assert line_of(result, db1) == f"- Primary {db1} replication lag 0ms"
    assert line_of(result, db2) == f"- Secondary {db2} replication lag 6000ms"
    graded = {line.text: line.grade for line in result.lines}
    assert graded[line_of(result, arb)] is None  # listed, not graded
    assert result.grade is Grade.YELLOW, texts(result)


# Metrics ----------------------------------------------------------------------------------


async def test_lag_metric_per_member_and_series_dropped_when_not_measured(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    h0, h1, h2 = replica_set.hosts
    replica_set.set_lag_ms(1, 1200)
    replica_set.set_lag_ms(2, 300)
    async with engine_for(make_engine, make_spec, replica_set.uri) as engine:
        assert lag_series(engine) == {}
        await engine.run_once(SERVICE_ID)
        assert lag_series(engine) == pytest.approx({h0: 0.0, h1: 1.2, h2: 0.3})

        # A member that cannot be measured loses its series; the others keep theirs.
        replica_set.stop_member(2)
        partial = await engine.run_once(SERVICE_ID)
        assert "unreachable" in line_of(partial, h2)
        assert lag_series(engine) == pytest.approx({h0: 0.0, h1: 1.2})

        # A run that measures nothing drops every series of the service.
        replica_set.fail("replSetGetStatus", 13, "Unauthorized", "not authorized")
        failed = await engine.run_once(SERVICE_ID)
        assert failed.grade is Grade.RED
        assert lag_series(engine) == {}

        # Measuring again brings them back.
        replica_set.clear_failures()
        await engine.run_once(SERVICE_ID)
        assert lag_series(engine) == pytest.approx({h0: 0.0, h1: 1.2})
