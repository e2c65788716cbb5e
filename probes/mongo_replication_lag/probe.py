"""The probe, the grading and the metrics of the kind: a replica set, or through a mongos every
shard's replica set (and the config servers'), in one document."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pymongo
from bson.errors import BSONError
from pymongo import AsyncMongoClient
from pymongo import errors as mongo_errors
from pymongo.server_type import SERVER_TYPE
from pymongo.topology_description import TOPOLOGY_TYPE

from probes.base import KindMetric, ProbeContext, reading_reply
from probes.errors import ProbeError, ProbeReplyError
from probes.mongo_replication_lag import elections
from probes.mongo_replication_lag.driver import driver_timeout_s, map_mongo_error
from probes.mongo_replication_lag.oplog import OplogReading, read_oplog_window, reusable
from probes.mongo_replication_lag.replica_set import (
    ReplicaSetObservation,
    grade_replica_set,
    headrooms_s,
    measure_replica_set,
    secondaries_behind,
)
from probes.mongo_replication_lag.sharded import (
    CONFIG_SERVERS,
    ShardedClusterObservation,
    ShardReading,
    ShardTarget,
    config_servers_from_map,
    is_router,
    shards_from_list,
)
from schemas.context_spec import MongoReplicationLagSpec
from schemas.grading import Grade, Line

Client = AsyncMongoClient[dict[str, Any]]
MongoObservation = ReplicaSetObservation | ShardedClusterObservation

#: What a plain replica set is called in the kind's memory (a shard goes by its name).
_PLAIN_SET = ""


async def probe_mongo_replication_lag(
    spec: MongoReplicationLagSpec, ctx: ProbeContext
) -> MongoObservation:
    """Measure the replica set behind `spec.connection`, or every shard of the cluster when
    it reaches a mongos."""
    client = await ctx.mongo.get(spec.connection)
    memory: dict[str, Any] = ctx.memory.setdefault(spec.service_id, {})
    try:
        with pymongo.timeout(driver_timeout_s(spec.timeout_s)):
            router = known_router(client)
            if router is None:
                # The driver has not met the server yet: ask it (the first run only).
                router = is_router(await _hello(client))
            if router:
                return await _probe_cluster(client, spec, ctx, memory)
            observation = await measure_set(client, spec, ctx, memory.setdefault(_PLAIN_SET, {}))
    except mongo_errors.PyMongoError as exc:
        raise map_mongo_error(exc, spec, ctx) from None
    except BSONError:
        raise ProbeReplyError("unreadable reply from MongoDB: not valid BSON") from None
    for name in [name for name in memory if name != _PLAIN_SET]:
        del memory[name]
    return observation


def known_router(client: Client) -> bool | None:
    """Whether `client` talks to a mongos, from what the driver already knows of the servers
    (its monitors say hello to each every heartbeat), None when it has not met them yet.

    Saves a `hello` round trip per run: a fifth of the commands a run used to send.
    """
    description = client.topology_description
    topology = description.topology_type
    if topology == TOPOLOGY_TYPE.Sharded:
        return True
    if topology in (TOPOLOGY_TYPE.ReplicaSetWithPrimary, TOPOLOGY_TYPE.ReplicaSetNoPrimary):
        return False
    if topology == TOPOLOGY_TYPE.Single:
        (server,) = description.server_descriptions().values()
        if server.server_type == SERVER_TYPE.Mongos:
            return True
        if server.server_type not in (SERVER_TYPE.Unknown, SERVER_TYPE.LoadBalancer):
            return False
    # Unknown (not met yet), LoadBalanced (a balancer hides what is behind it).
    return None


async def _hello(client: Client) -> dict[str, Any]:
    try:
        return await client.admin.command("hello")
    except mongo_errors.OperationFailure as exc:
        if exc.code != 59:  # CommandNotFound: MongoDB 4.4 before 4.4.2 knows isMaster only
            raise
        return await client.admin.command("isMaster")


async def measure_set(
    client: Client, spec: MongoReplicationLagSpec, ctx: ProbeContext, memory: dict[str, Any]
) -> ReplicaSetObservation:
    """One replica set: status and config on the member the client reaches (the primary,
    unless the URI says directConnection), then the oplog window on the primary, and the
    elections since the last run. `memory` is the set's entry in the kind's memory: the
    config is fetched again only when the status says it changed."""
    status = await client.admin.command("replSetGetStatus")
    version = config_version(status)
    cached = memory.get("config")
    if version is not None and cached is not None and cached[0] == version:
        config = cached[1]
    else:
        config = await client.admin.command("replSetGetConfig")
    with reading_reply("MongoDB (replSetGetStatus / replSetGetConfig)"):
        observation = measure_replica_set(status, config)
    # Kept only once it measured well, and only when the status names its version.
    memory["config"] = (version, config) if version is not None else None
    primary = observation.primary_name
    now_s = elections.clock()
    oplog: OplogReading | None = None
    if spec.oplog.read and primary is not None and not observation.answered_by_primary:
        # A directConnection URI to a secondary, or a driver that has not seen an election yet.
        answered = observation.answered_by or "another member"
        problem = f"read on the primary only, and {answered}, not the primary, answered"
        oplog = OplogReading(primary, problem=problem, problem_grade=None)
    elif spec.oplog.read and primary is not None:
        oplog = await _oplog_window(client, observation, primary, spec, ctx, memory, now_s)
    seen = elections.track_elections(memory, primary, observation.term, now_s, spec.election_window)
    # One copy of the (frozen) observation for both: replace() is not cheap.
    return replace(observation, oplog=oplog, elections=seen)


async def _oplog_window(  # noqa: PLR0917 (the state of one run, passed along)
    client: Client,
    observation: ReplicaSetObservation,
    primary: str,
    spec: MongoReplicationLagSpec,
    ctx: ProbeContext,
    memory: dict[str, Any],
    now_s: float,
) -> OplogReading:
    """The window read on `primary` by an earlier run of the same primary and term while it
    may stand (oplog.reusable), else read now."""
    seen_on = (primary, observation.term)
    earlier: tuple[float, tuple[str, int | None], OplogReading] | None = memory.get("oplog")
    if earlier is not None:
        read_at_s, read_on, reading = earlier
        behind = secondaries_behind(observation)
        if read_on == seen_on and reusable(reading, now_s - read_at_s, behind, spec.oplog.bands()):
            return reading
    reading = await read_oplog_window(client, primary, spec, ctx)
    memory["oplog"] = (now_s, seen_on, reading)
    return reading


def config_version(status: Mapping[str, Any]) -> tuple[object, ...] | None:
    """What identifies the config the answering member holds: a reconfig raises its
    `configVersion`, an election its `configTerm` (MongoDB 4.4+) and the set's `term`. None
    when the status does not say (recorded replies, old servers): then the config is
    fetched every run."""
    members = status.get("members")
    if not isinstance(members, list):
        return None
    me = next((m for m in members if isinstance(m, Mapping) and m.get("self")), None)
    if me is None:
        return None
    version = me.get("configVersion")
    if not isinstance(version, int) or isinstance(version, bool):
        return None
    # The answering member too: after a failover another member answers.
    return (status.get("set"), me.get("name"), version, me.get("configTerm"), status.get("term"))


async def _probe_cluster(
    router: Client, spec: MongoReplicationLagSpec, ctx: ProbeContext, memory: dict[str, Any]
) -> ShardedClusterObservation:
    """Discover the shards through the mongos, measure each concurrently (each within what
    is left of the driver's deadline), close the clients of shards that left."""
    listing = await router.admin.command("listShards")
    with reading_reply("the mongos (listShards)"):
        targets: list[ShardTarget | ShardReading] = list(shards_from_list(listing))
    if spec.config_servers:
        targets.append(await _config_servers(router, spec, ctx))
    names = {target.name for target in targets}
    readings, _ = await asyncio.gather(
        asyncio.gather(*(_measure_shard(target, spec, ctx, memory) for target in targets)),
        ctx.mongo.retire_shards(spec.connection, names),
    )
    for name in [name for name in memory if name not in names]:
        del memory[name]
    return ShardedClusterObservation(shards=tuple(readings))


async def _config_servers(
    router: Client, spec: MongoReplicationLagSpec, ctx: ProbeContext
) -> ShardTarget | ShardReading:
    try:
        shard_map = await router.admin.command("getShardMap")
    except mongo_errors.OperationFailure as exc:
        problem = f"getShardMap failed: {map_mongo_error(exc, spec, ctx)}"
        return ShardReading(CONFIG_SERVERS, problem=problem, problem_grade=Grade.YELLOW)
    with reading_reply("the mongos (getShardMap)"):
        target = config_servers_from_map(shard_map)
    if target is None:
        problem = "getShardMap names no config server replica set"
        return ShardReading(CONFIG_SERVERS, problem=problem, problem_grade=Grade.YELLOW)
    return target


async def _measure_shard(
    target: ShardTarget | ShardReading,
    spec: MongoReplicationLagSpec,
    ctx: ProbeContext,
    memory: dict[str, Any],
) -> ShardReading:
    """One shard, its failure confined to its own reading."""
    if isinstance(target, ShardReading):
        return target
    try:
        client = await ctx.mongo.shard(
            spec.connection,
            target.name,
            target.hosts,
            target.set_name,
            credentials=spec.shard_connections.get(target.name),
        )
        observation = await measure_set(client, spec, ctx, memory.setdefault(target.name, {}))
    except ProbeError as exc:
        return ShardReading(target.name, problem=str(exc))
    except mongo_errors.PyMongoError as exc:
        return ShardReading(target.name, problem=str(map_mongo_error(exc, spec, ctx)))
    except BSONError:
        return ShardReading(target.name, problem="unreadable reply from MongoDB: not valid BSON")
    return ShardReading(target.name, observation=observation)


def grade_mongo_replication_lag(
    observation: MongoObservation, spec: MongoReplicationLagSpec
) -> list[Line]:
    """A replica set's lines; for a sharded cluster, each shard's lines named by the shard."""
    if isinstance(observation, ReplicaSetObservation):
        return grade_replica_set(observation, spec)
    if not observation.shards:
        return [Line("- the mongos lists no shards (listShards)", Grade.YELLOW)]
    lines: list[Line] = []
    for shard in observation.shards:
        if shard.observation is None:
            lines.append(Line(f"- {shard.name} not measured: {shard.problem}", shard.problem_grade))
            continue
        for line in grade_replica_set(shard.observation, spec):
            lines.append(Line(f"- {shard.name} {line.text.removeprefix('- ')}", line.grade))
    return lines


LAG_METRIC = KindMetric(
    name="zeroprobe_mongo_replication_lag_seconds",
    documentation="Replication lag of a replica-set member behind the primary, delay subtracted.",
    label="member",
)
OPLOG_WINDOW_METRIC = KindMetric(
    name="zeroprobe_mongo_oplog_window_seconds",
    documentation="Time between the first and the last entry of the primary's oplog.",
    label="replica_set",
)
OPLOG_HEADROOM_METRIC = KindMetric(
    name="zeroprobe_mongo_oplog_headroom_seconds",
    documentation="Oplog window minus how far a secondary is behind the primary (delay "
    "included): how much further it may fall behind before it needs a resync.",
    label="member",
)


def export_mongo_replication_lag(
    observation: MongoObservation, spec: MongoReplicationLagSpec
) -> dict[str, dict[str, float]]:
    """Lag and headroom per member, window per replica set. Members of a shard are named
    `shard/host:port`, its window by the shard's name."""
    if isinstance(observation, ReplicaSetObservation):
        sets = [("", observation.set_name or observation.primary_name or "", observation)]
    else:
        sets = [
            (f"{s.name}/", s.name, s.observation)
            for s in observation.shards
            if s.observation is not None
        ]
    lags: dict[str, float] = {}
    windows: dict[str, float] = {}
    headrooms: dict[str, float] = {}
    for prefix, set_label, rs in sets:
        for member in rs.members:
            if member.lag_ms is not None:
                lags[prefix + member.name] = member.lag_ms / 1000
        if rs.oplog is not None and rs.oplog.window_s is not None:
            windows[set_label] = rs.oplog.window_s
        for name, seconds in headrooms_s(rs).items():
            headrooms[prefix + name] = seconds
    return {
        LAG_METRIC.name: lags,
        OPLOG_WINDOW_METRIC.name: windows,
        OPLOG_HEADROOM_METRIC.name: headrooms,
    }
