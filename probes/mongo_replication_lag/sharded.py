"""A sharded cluster seen through a mongos: its shards (`listShards`) and config servers
(`getShardMap`), each a replica set measured like any other, concurrently."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probes.base import Observation
from probes.errors import ProbeReplyError
from probes.mongo_replication_lag.replica_set import ReplicaSetObservation
from schemas.grading import Grade

#: The name the config server replica set goes by in lines and metrics (getShardMap's key).
CONFIG_SERVERS = "config"


@dataclass(frozen=True, slots=True)
class ShardTarget:
    """Where one shard's replica set is: its name in the cluster, set name and members."""

    name: str
    set_name: str
    hosts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ShardReading:
    """One shard measured (`observation`), or why it could not be (`problem`)."""

    name: str
    observation: ReplicaSetObservation | None = None
    problem: str = ""
    problem_grade: Grade = Grade.RED


@dataclass(frozen=True, slots=True)
class ShardedClusterObservation(Observation):
    """Every shard of the cluster (config servers last), in a stable order."""

    shards: tuple[ShardReading, ...]


def is_router(hello: Mapping[str, Any]) -> bool:
    """A mongos says so in its hello reply."""
    return hello.get("msg") == "isdbgrid"


def parse_connection_string(name: str, value: Any) -> ShardTarget:
    """`rsName/host1:port,host2:port` (a shard's `host` in listShards) as a target."""
    if not isinstance(value, str) or not value.strip():
        raise ProbeReplyError(f"malformed reply from the mongos: shard {name!r} has no host")
    set_name, slash, hosts = value.partition("/")
    if not slash:
        # Shards are replica sets since MongoDB 3.6; a bare host:port has no set to measure.
        set_name, hosts = "", value
    members = tuple(host.strip() for host in hosts.split(",") if host.strip())
    if not members:
        raise ProbeReplyError(f"malformed reply from the mongos: shard {name!r} has no host")
    return ShardTarget(name=name, set_name=set_name, hosts=members)


def shards_from_list(reply: Mapping[str, Any]) -> list[ShardTarget]:
    """The shards of a `listShards` reply, ordered by name."""
    shards = reply.get("shards")
    if not isinstance(shards, list):
        raise ProbeReplyError("malformed listShards reply: no shards list")
    targets = []
    for index, shard in enumerate(shards):
        if not isinstance(shard, Mapping) or not isinstance(shard.get("_id"), str):
            raise ProbeReplyError(f"malformed listShards reply: shard #{index} has no _id")
        targets.append(parse_connection_string(shard["_id"], shard.get("host")))
    return sorted(targets, key=lambda target: target.name)


def config_servers_from_map(reply: Mapping[str, Any]) -> ShardTarget | None:
    """The config server replica set named in a `getShardMap` reply, if any."""
    shard_map = reply.get("map")
    if not isinstance(shard_map, Mapping) or CONFIG_SERVERS not in shard_map:
        return None
    return parse_connection_string(CONFIG_SERVERS, shard_map[CONFIG_SERVERS])
