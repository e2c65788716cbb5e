"""The probe, the grading and the metrics of the kind: a replica set, or through a mongos every
shard's replica set (and the config servers'), in one document."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pymongo
from bson.errors import BSONError
from pymongo import AsyncMongoClient
from pymongo import errors as mongo_errors

from probes.base import KindMetric, ProbeContext, reading_reply
from probes.errors import ProbeError, ProbeReplyError
from probes.mongo_replication_lag import elections
from probes.mongo_replication_lag.driver import driver_timeout_s, map_mongo_error
from probes.mongo_replication_lag.oplog import OplogReading, read_oplog_window
from probes.mongo_replication_lag.replica_set import (
    ReplicaSetObservation,
    grade_replica_set,
    headrooms_s,
    measure_replica_set,
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
    client = ctx.mongo.get(spec.connection)
    memory: dict[str, Any] = ctx.memory.setdefault(spec.service_id, {})
    try:
        with pymongo.timeout(driver_timeout_s(spec.timeout_s)):
            if is_router(await _hello(client)):
                return await _probe_cluster(client, spec, ctx, memory)
            observation = await measure_set(client, spec, ctx)
    except mongo_errors.PyMongoError as exc:
        raise map_mongo_error(exc, spec, ctx) from None
    except BSONError:
        raise ProbeReplyError("unreadable reply from MongoDB: not valid BSON") from None
    for name in [name for name in memory if name != _PLAIN_SET]:
        del memory[name]
    return _with_elections(observation, memory.setdefault(_PLAIN_SET, {}), spec)


async def _hello(client: Client) -> dict[str, Any]:
    try:
        return await client.admin.command("hello")
    except mongo_errors.OperationFailure as exc:
        if exc.code != 59:  # CommandNotFound: MongoDB 4.4 before 4.4.2 knows isMaster only
            raise
        return await client.admin.command("isMaster")


async def measure_set(
    client: Client, spec: MongoReplicationLagSpec, ctx: ProbeContext
) -> ReplicaSetObservation:
    """One replica set: status and config on the member the client reaches (the primary,
    unless the URI says directConnection), then the oplog window on the primary."""
    status = await client.admin.command("replSetGetStatus")
    config = await client.admin.command("replSetGetConfig")
    with reading_reply("MongoDB (replSetGetStatus / replSetGetConfig)"):
        observation = measure_replica_set(status, config)
    primary = observation.primary_name
    if not spec.oplog.read or primary is None:
        return observation
    if not observation.answered_by_primary:
        # A directConnection URI to a secondary, or a driver that has not seen an election yet.
        answered = observation.answered_by or "another member"
        problem = f"read on the primary only, and {answered}, not the primary, answered"
        oplog = OplogReading(primary, problem=problem, problem_grade=None)
    else:
        oplog = await read_oplog_window(client, primary, spec, ctx)
    return replace(observation, oplog=oplog)


def _with_elections(
    observation: ReplicaSetObservation, memory: dict[str, Any], spec: MongoReplicationLagSpec
) -> ReplicaSetObservation:
    seen = elections.track_elections(
        memory,
        observation.primary_name,
        observation.term,
        elections.clock(),
        spec.election_window,
    )
    return replace(observation, elections=seen)


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
        observation = await measure_set(client, spec, ctx)
    except ProbeError as exc:
        return ShardReading(target.name, problem=str(exc))
    except mongo_errors.PyMongoError as exc:
        return ShardReading(target.name, problem=str(map_mongo_error(exc, spec, ctx)))
    except BSONError:
        return ShardReading(target.name, problem="unreadable reply from MongoDB: not valid BSON")
    seen = _with_elections(observation, memory.setdefault(target.name, {}), spec)
    return ShardReading(target.name, observation=seen)


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
