"""A sharded cluster through a mongos, over real TCP: MockupDB servers for the mongos and for
every member of every shard and of the config server replica set.

The mongos answers hello (`msg: "isdbgrid"`), `listShards` and `getShardMap` as MongoDB
documents them; the probe reaches each shard's replica set itself. Every run goes through
`Engine.run_once`: connection labels, shard clients, grading, store and metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from probes.connections import shard_uri
from probes.errors import ProbeReplyError
from probes.mongo_replication_lag.sharded import (
    ShardTarget,
    config_servers_from_map,
    parse_connection_string,
    shards_from_list,
)
from schemas.grading import Grade
from tests.conftest import EngineFactory, SpecFactory
from tests.mongo_helpers import (
    DRIVER_SOCKET_LEAK,
    HEADROOM_METRIC,
    LAG_METRIC,
    SERVICE_ID,
    WINDOW_METRIC,
    collect_leaked_driver_sockets,  # noqa: F401 - autouse
    engine_for,
    graded,
    promtool_check,
    series,
    starting,
    texts,
)
from zeroprobe.engine.core import Engine
from zeroprobe.engine.store import Result
from zeroprobe.simulators.mongo import SimulatedReplicaSet
from zeroprobe.simulators.sharded import SimulatedShardedCluster

pytestmark = pytest.mark.filterwarnings(DRIVER_SOCKET_LEAK)

TIMEOUT_S = 2.0
#: Spec fields of every test: a probe timeout long enough for a cold start of many clients.
SPEC: dict[str, Any] = {"interval": "4s", "timeout": f"{TIMEOUT_S:g}s"}
SLACK_S = 0.3
PASSWORD = "sh4rdpw"


def steady_lag(member: int, elapsed_s: float) -> float:
    """Every secondary 250 ms behind: the headroom is a little under the 26h 14m window."""
    return 250.0


@pytest.fixture
def cluster() -> Iterator[SimulatedShardedCluster]:
    """A mongos, shards shard01 and shard02 of 3 members, 3 config servers; steady lags."""
    simulated = SimulatedShardedCluster.build(shards=2, members=3, lag_fn=steady_lag).start()
    try:
        yield simulated
    finally:
        simulated.stop()


def member_lines(rs: SimulatedReplicaSet, shard: str, lags_ms: tuple[int, ...]) -> list[str]:
    """The member lines and the oplog line of a healthy shard whose member 0 is primary."""
    primary, *secondaries = rs.hosts
    furthest = max(zip(lags_ms, secondaries, strict=True), key=lambda pair: pair[0])[1]
    return [
        f"- {shard} Primary {primary} replication lag 0ms",
        *(
            f"- {shard} Secondary {host} replication lag {lag}ms"
            for lag, host in zip(lags_ms, secondaries, strict=True)
        ),
        f"- {shard} oplog window 26h 14m on {primary}; least headroom 26h 13m ({furthest})",
    ]


def shard_of(result: Result, shard: str) -> list[str]:
    return starting(result, f"- {shard} ")


# --------------------------------------------------------------------------- replies and URIs


def test_list_shards_and_shard_map_as_mongodb_documents_them() -> None:
    list_shards = {
        "shards": [
            {"_id": "shard02", "host": "shard02/db4:27018,db5:27018,db6:27018", "state": 1},
            {
                "_id": "shard01",
                "host": "shard01/db1:27018,db2:27018,db3:27018",
                "state": 1,
                "draining": True,
            },
        ],
        "ok": 1.0,
    }
    shard_map = {
        "map": {
            "shard01": "shard01/db1:27018,db2:27018,db3:27018",
            "db1:27018": "shard01/db1:27018,db2:27018,db3:27018",
            "config": "configRepl/cfg1:27019,cfg2:27019,cfg3:27019",
            "cfg1:27019": "configRepl/cfg1:27019,cfg2:27019,cfg3:27019",
        },
        "hosts": {"db1:27018": "shard01", "cfg1:27019": "config"},
        "connStrings": {"configRepl/cfg1:27019,cfg2:27019,cfg3:27019": "config"},
        "ok": 1.0,
    }
    assert shards_from_list(list_shards) == [
        ShardTarget("shard01", "shard01", ("db1:27018", "db2:27018", "db3:27018")),
        ShardTarget("shard02", "shard02", ("db4:27018", "db5:27018", "db6:27018")),
    ]
    assert config_servers_from_map(shard_map) == ShardTarget(
        "config", "configRepl", ("cfg1:27019", "cfg2:27019", "cfg3:27019")
    )
    assert config_servers_from_map({"map": {"shard01": "shard01/db1:27018"}}) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("rsA/a:1,b:2", ShardTarget("s", "rsA", ("a:1", "b:2")), id="set-and-hosts"),
        pytest.param("rsA/a:1, b:2,", ShardTarget("s", "rsA", ("a:1", "b:2")), id="spaces"),
        pytest.param("a:1", ShardTarget("s", "", ("a:1",)), id="a-standalone-shard"),
    ],
)
def test_a_shard_connection_string(host: str, expected: ShardTarget) -> None:
    assert parse_connection_string("s", host) == expected


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        pytest.param({}, "no shards list", id="no-shards"),
        pytest.param({"shards": [{"host": "rs/a:1"}]}, "shard #0 has no _id", id="no-id"),
        pytest.param({"shards": [{"_id": "s1"}]}, "shard 's1' has no host", id="no-host"),
        pytest.param({"shards": [{"_id": "s1", "host": "rs/"}]}, "has no host", id="no-members"),
    ],
)
def test_a_malformed_list_shards_reply(reply: dict[str, Any], message: str) -> None:
    with pytest.raises(ProbeReplyError, match=message):
        shards_from_list(reply)


HOSTS = ("a:1", "b:2")


@pytest.mark.parametrize(
    ("base", "set_name", "expected"),
    [
        pytest.param(
            "mongodb://monitor:pw@mongos1:27017,mongos2:27017/?authSource=admin",
            "rs1",
            "mongodb://monitor:pw@a:1,b:2/?authSource=admin&replicaSet=rs1",
            id="credentials-and-options-kept",
        ),
        pytest.param(
            "mongodb://mongos:27017/", "rs1", "mongodb://a:1,b:2/?replicaSet=rs1", id="bare"
        ),
        pytest.param(
            "mongodb://mongos:27017", "rs1", "mongodb://a:1,b:2/?replicaSet=rs1", id="no-slash"
        ),
        pytest.param(
            "mongodb://u:p%40ss@m:1/admin?tls=true&directConnection=true&replicaSet=x",
            "rs1",
            "mongodb://u:p%40ss@a:1,b:2/admin?tls=true&replicaSet=rs1",
            id="router-only-options-dropped",
        ),
        pytest.param(
            "mongodb://m:1/?loadBalanced=true;srvServiceName=x;appName=z",
            "rs1",
            "mongodb://a:1,b:2/?appName=z&replicaSet=rs1",
            id="semicolons",
        ),
        pytest.param(
            "mongodb+srv://u:p@cluster0.example.net/?retryWrites=true",
            "rs1",
            "mongodb://u:p@a:1,b:2/?retryWrites=true&tls=true&replicaSet=rs1",
            id="srv-implies-tls",
        ),
        pytest.param(
            "mongodb+srv://u:p@cluster0.example.net/?tls=false",
            "rs1",
            "mongodb://u:p@a:1,b:2/?tls=false&replicaSet=rs1",
            id="srv-tls-said-otherwise",
        ),
        pytest.param("mongodb://m:1/?w=1", "", "mongodb://a:1,b:2/?w=1", id="no-set"),
    ],
)  # fmt: skip
def test_a_shard_uri_keeps_the_routers_credentials(base: str, set_name: str, expected: str) -> None:
    assert shard_uri(base, HOSTS, set_name) == expected


# --------------------------------------------------------------------------- the cluster


async def test_every_member_of_every_shard_is_graded_in_one_document(
    cluster: SimulatedShardedCluster, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    shard01, shard02 = cluster.shards
    assert cluster.config_servers is not None
    shard02.set_lag_ms(1, 6120)
    async with engine_for(make_engine, make_spec, cluster.uri, **SPEC) as engine:
        result = await engine.run_once(SERVICE_ID)
        liveness = engine.liveness()

    assert texts(result) == [
        *member_lines(shard01, "shard01", (250, 250)),
        *member_lines(shard02, "shard02", (6120, 250)),
        *member_lines(cluster.config_servers, "config", (250, 250)),
    ]
    assert graded(result)[f"- shard02 Secondary {shard02.hosts[1]} replication lag 6120ms"] is (
        Grade.YELLOW
    )
    assert result.grade is Grade.YELLOW  # the worst of all shards
    assert result.reached_target is True
    assert all(check.ok for check in liveness)
    document = json.loads(result.document)
    assert document[SERVICE_ID]["status"] == "YELLOW"
    (message,) = document[SERVICE_ID]["messages"]
    assert message["actionBody"] == "\n".join(texts(result))


async def test_one_shard_down_is_red_for_that_shard_alone(
    cluster: SimulatedShardedCluster, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    shard01, shard02 = cluster.shards
    async with engine_for(make_engine, make_spec, cluster.uri, **SPEC) as engine:
        await engine.run_once(SERVICE_ID)
        shard02.stop()
        started = time.perf_counter()
        down = await engine.run_once(SERVICE_ID)
        took_s = time.perf_counter() - started
        shard02.start()
        deadline = time.monotonic() + 10
        back = await engine.run_once(SERVICE_ID)
        while back.grade is not Grade.GREEN and time.monotonic() < deadline:
            back = await engine.run_once(SERVICE_ID)

    (line,) = shard_of(down, "shard02")
    assert line.startswith("- shard02 not measured: ")
    assert "connection refused" in line.lower(), line
    assert graded(down)[line] is Grade.RED
    assert down.grade is Grade.RED
    # The other shards are measured as before, GREEN.
    assert shard_of(down, "shard01") == member_lines(shard01, "shard01", (250, 250))
    assert all(graded(down)[text] is Grade.GREEN for text in shard_of(down, "shard01"))
    assert len(shard_of(down, "config")) == 4
    assert down.reached_target is True  # the mongos answered
    assert took_s < TIMEOUT_S, took_s
    assert back.grade is Grade.GREEN, texts(back)
    assert shard_of(back, "shard02") == member_lines(shard02, "shard02", (250, 250))


async def test_a_hung_shard_does_not_hold_up_the_others(
    cluster: SimulatedShardedCluster, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    shard02 = cluster.shards[1]
    async with engine_for(make_engine, make_spec, cluster.uri, **SPEC) as engine:
        shard02.reply_delay_s = TIMEOUT_S + 0.5
        started = time.perf_counter()
        result = await engine.run_once(SERVICE_ID)
        took_s = time.perf_counter() - started
        shard02.reply_delay_s = 0.0

    (line,) = shard_of(result, "shard02")
    assert line.startswith("- shard02 not measured: "), line
    assert result.outcome == "success"  # not the runner's timeout: the shard's own line
    assert len(shard_of(result, "shard01")) == 4
    assert took_s < TIMEOUT_S + SLACK_S, took_s


async def test_a_shard_that_refuses_its_credentials_is_red_alone(
    cluster: SimulatedShardedCluster,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shard02 = cluster.shards[1]
    shard02.fail("saslStart", 18, "AuthenticationFailed", "Authentication failed.")
    # A shard-local user for shard02: the label's user and password, shard02's members.
    local = {"ZEROPROBE_CONNECTION_SHARD02_LOCAL": f"mongodb://local:{PASSWORD}@unused:1/"}
    async with engine_for(
        make_engine,
        make_spec,
        cluster.uri,
        environ=local,
        shard_connections={"shard02": "shard02-local"},
        **SPEC,
    ) as engine:
        result = await engine.run_once(SERVICE_ID)
        exposition = engine.metrics.render()

    assert shard_of(result, "shard02") == [
        "- shard02 not measured: MongoDB refused the credentials: check the user, password "
        "and authSource of the connection (AuthenticationFailed, code 18)"
    ]
    assert result.grade is Grade.RED
    assert len(shard_of(result, "shard01")) == 4
    assert all(graded(result)[text] is Grade.GREEN for text in shard_of(result, "shard01"))
    assert PASSWORD.encode() not in result.document
    assert PASSWORD.encode() not in exposition
    assert PASSWORD not in caplog.text


async def test_an_unset_shard_connection_names_its_variable(
    cluster: SimulatedShardedCluster, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    async with engine_for(
        make_engine, make_spec, cluster.uri, shard_connections={"shard01": "eu-shard"}, **SPEC
    ) as engine:
        result = await engine.run_once(SERVICE_ID)

    assert shard_of(result, "shard01") == [
        "- shard01 not measured: connection 'eu-shard': ZEROPROBE_CONNECTION_EU_SHARD is not set"
    ]
    assert len(shard_of(result, "shard02")) == 4


async def test_shards_added_and_removed_are_picked_up_on_the_next_run(
    cluster: SimulatedShardedCluster, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    shard03 = SimulatedReplicaSet(size=3, set_name="shard03", lag_fn=steady_lag)
    try:
        async with engine_for(make_engine, make_spec, cluster.uri, **SPEC) as engine:
            before = await engine.run_once(SERVICE_ID)
            cluster.add_shard(shard03)
            added = await engine.run_once(SERVICE_ID)
            shards_added = engine.mongo.shard_names("rs")
            removed_set = cluster.remove_shard("shard01")
            removed = await engine.run_once(SERVICE_ID)
            shards_removed = engine.mongo.shard_names("rs")
            lags = series(engine, LAG_METRIC)
            windows = series(engine, WINDOW_METRIC)
    finally:
        shard03.stop()

    assert not shard_of(before, "shard03")
    assert shard_of(added, "shard03") == member_lines(shard03, "shard03", (250, 250))
    assert shards_added == ["config", "shard01", "shard02", "shard03"]
    assert not shard_of(removed, "shard01"), texts(removed)
    # Its client is closed and its series are gone.
    assert shards_removed == ["config", "shard02", "shard03"]
    assert not any(label.startswith("shard01/") for label in lags), lags
    assert sorted(windows) == ["config", "shard02", "shard03"]
    assert removed_set.set_name == "shard01"


async def test_an_election_in_one_shard_is_that_shards_line(
    cluster: SimulatedShardedCluster, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    shard02 = cluster.shards[1]
    h0, h1, _ = shard02.hosts
    async with engine_for(make_engine, make_spec, cluster.uri, **SPEC) as engine:
        await engine.run_once(SERVICE_ID)
        shard02.elect(1)
        result = await engine.run_once(SERVICE_ID)

    (line,) = starting(result, "- shard02 primary changed ")
    assert line.endswith(f"ago: {h0} → {h1} (term 1 → 2)")
    assert graded(result)[line] is Grade.YELLOW
    assert not any("primary changed" in text for text in shard_of(result, "shard01"))


async def test_a_member_down_in_a_shard_puts_that_shards_majority_at_risk(
    cluster: SimulatedShardedCluster, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    shard01 = cluster.shards[0]
    shard01.stop_member(2)
    async with engine_for(make_engine, make_spec, cluster.uri, **SPEC) as engine:
        result = await engine.run_once(SERVICE_ID)

    risk = "- shard01 no member can be lost without losing majority writes: 2 of 2 needed"
    assert graded(result)[risk] is Grade.YELLOW
    (down,) = starting(result, f"- shard01 Secondary {shard01.hosts[2]} unreachable: ")
    assert graded(result)[down] is Grade.RED
    assert not any("majority" in text for text in shard_of(result, "shard02"))


async def test_the_router_refusing_list_shards_is_one_red_line(
    cluster: SimulatedShardedCluster, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    cluster.fail("listShards", 13, "Unauthorized", "not authorized on admin to execute command")
    async with engine_for(make_engine, make_spec, cluster.uri, **SPEC) as engine:
        result = await engine.run_once(SERVICE_ID)

    assert len(result.lines) == 1, texts(result)
    assert "clusterMonitor" in result.lines[0].text
    assert result.grade is Grade.RED
    assert result.reached_target is True


@pytest.mark.parametrize(
    ("config_servers", "fail_shard_map", "expected"),
    [
        pytest.param(False, False, [], id="left-out-by-the-spec"),
        pytest.param(
            True,
            True,
            [
                (
                    "- config not measured: getShardMap failed: MongoDB refused the command: "
                    "no such command: 'getShardMap' (CommandNotFound, code 59)",
                    Grade.YELLOW,
                )
            ],
            id="get-shard-map-refused",
        ),
    ],
)
async def test_config_servers(
    cluster: SimulatedShardedCluster,
    make_spec: SpecFactory,
    make_engine: EngineFactory,
    *,
    config_servers: bool,
    fail_shard_map: bool,
    expected: list[tuple[str, Grade]],
) -> None:
    if fail_shard_map:
        cluster.fail("getShardMap", 59, "CommandNotFound", "no such command: 'getShardMap'")
    async with engine_for(
        make_engine, make_spec, cluster.uri, config_servers=config_servers, **SPEC
    ) as engine:
        result = await engine.run_once(SERVICE_ID)

    assert [(text, graded(result)[text]) for text in shard_of(result, "config")] == expected
    assert len(shard_of(result, "shard01")) == len(shard_of(result, "shard02")) == 4


async def test_metrics_name_the_shard_and_pass_promtool(
    cluster: SimulatedShardedCluster, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    shard01, shard02 = cluster.shards
    shard01.set_lag_ms(2, 1500)
    async with engine_for(make_engine, make_spec, cluster.uri, **SPEC) as engine:
        await engine.run_once(SERVICE_ID)
        lags = series(engine, LAG_METRIC)
        windows = series(engine, WINDOW_METRIC)
        headrooms = series(engine, HEADROOM_METRIC)
        exposition = engine.metrics.render()

    assert cluster.config_servers is not None
    sets = {"shard01": shard01, "shard02": shard02, "config": cluster.config_servers}
    assert set(lags) == {f"{name}/{host}" for name, rs in sets.items() for host in rs.hosts}
    assert lags[f"shard01/{shard01.hosts[2]}"] == pytest.approx(1.5)
    assert set(windows) == set(sets)
    assert all(26 * 3600 + 14 * 60 <= w < 26 * 3600 + 15 * 60 for w in windows.values())
    assert set(headrooms) == {f"{n}/{h}" for n, rs in sets.items() for h in rs.hosts[1:]}
    assert await promtool_check(exposition) == (0, b"", b"")


async def _timed(engine: Engine) -> tuple[Result, float]:
    started = time.perf_counter()
    result = await engine.run_once(SERVICE_ID)
    return result, time.perf_counter() - started


async def test_ten_shards_of_three_are_measured_within_one_probe_timeout(
    make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    with SimulatedShardedCluster.build(shards=10, members=3, lag_fn=steady_lag) as big:
        async with engine_for(make_engine, make_spec, big.uri, **SPEC) as engine:
            cold, cold_s = await _timed(engine)  # 11 replica sets discovered from scratch
            warm, warm_s = await _timed(engine)

    for result in (cold, warm):
        assert result.grade is Grade.GREEN, texts(result)
        for rs in big.replica_sets:
            name = "config" if rs is big.config_servers else rs.set_name
            assert len(shard_of(result, name)) == 4, (name, texts(result))
    assert cold_s < TIMEOUT_S, cold_s
    assert warm_s < TIMEOUT_S, warm_s
