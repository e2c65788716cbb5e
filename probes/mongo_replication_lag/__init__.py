"""MongoDB replication lag, per member, in milliseconds: of a replica set, or through a mongos
of every shard's replica set and the config servers'.

Runs `replSetGetStatus` and `replSetGetConfig` through PyMongo's asyncio client and joins
their members by `_id` (`replica_set`); reads the oplog window on the primary (`oplog`);
remembers the primary and term between runs (`elections`), and what need not be asked again
(the config until the status names another, the oplog window while it may stand); discovers
the shards of a sharded cluster (`sharded`). Measuring and grading are pure functions of the
replies, so recorded replies test them without a server.
"""

from __future__ import annotations

from probes.base import Kind
from probes.mongo_replication_lag.driver import driver_timeout_s, map_mongo_error
from probes.mongo_replication_lag.probe import (
    LAG_METRIC,
    OPLOG_HEADROOM_METRIC,
    OPLOG_WINDOW_METRIC,
    MongoObservation,
    export_mongo_replication_lag,
    grade_mongo_replication_lag,
    probe_mongo_replication_lag,
)
from probes.mongo_replication_lag.replica_set import (
    MemberReading,
    ReplicaSetObservation,
    measure_replica_set,
    member_time_ms,
)
from probes.mongo_replication_lag.sharded import ShardedClusterObservation, ShardReading
from schemas.context_spec import MongoReplicationLagSpec

__all__ = [
    "KIND",
    "LAG_METRIC",
    "OPLOG_HEADROOM_METRIC",
    "OPLOG_WINDOW_METRIC",
    "MemberReading",
    "MongoObservation",
    "ReplicaSetObservation",
    "ShardReading",
    "ShardedClusterObservation",
    "driver_timeout_s",
    "export_mongo_replication_lag",
    "grade_mongo_replication_lag",
    "map_mongo_error",
    "measure_replica_set",
    "member_time_ms",
    "probe_mongo_replication_lag",
]

KIND: Kind[MongoReplicationLagSpec, MongoObservation] = Kind(
    name="mongo_replication_lag",
    spec=MongoReplicationLagSpec,
    probe=probe_mongo_replication_lag,
    grade=grade_mongo_replication_lag,
    metrics=(LAG_METRIC, OPLOG_WINDOW_METRIC, OPLOG_HEADROOM_METRIC),
    export=export_mongo_replication_lag,
    liveness_needs_target=True,
)
