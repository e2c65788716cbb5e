"""A simulated sharded MongoDB cluster on loopback: a mongos and replica sets behind it.

The mongos is a MockupDB server that says `msg: "isdbgrid"` in its hello reply and answers
`listShards` and `getShardMap` the way MongoDB documents them; each shard and the config
server replica set is a `SimulatedReplicaSet`, reached directly as a real driver reaches a
shard. Used by `zeroprobe demo` and by the tests.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId, Timestamp
from mockupdb import MockupDB

from zeroprobe.simulators.mongo import (
    DEFAULT_OPLOG_WINDOW_S,
    WIRE_VERSION,
    CommandFailure,
    LagFn,
    SimulatedMember,
    SimulatedReplicaSet,
    demo_lag_ms,
)

#: The shard the demo lets run short of oplog, and its hidden member delayed by an hour.
DEMO_DRIFTING_SHARD = "shard02"
DEMO_DELAY_S = 3600


def demo_oplog_window_s(elapsed_s: float) -> float:
    """The demo's shrinking oplog: 26h 14m -> 100m -> 70m -> 26h 14m every 4 minutes.

    Against a member delayed by an hour that is GREEN, then YELLOW (60 % of the window used),
    RED (86 %), GREEN again.
    """
    keyframes = [
        (0, DEFAULT_OPLOG_WINDOW_S),
        (45, DEFAULT_OPLOG_WINDOW_S),
        (75, 100 * 60),
        (105, 100 * 60),
        (120, 70 * 60),
        (165, 70 * 60),
        (195, DEFAULT_OPLOG_WINDOW_S),
        (240, DEFAULT_OPLOG_WINDOW_S),
    ]
    t = elapsed_s % 240
    for (t0, v0), (t1, v1) in itertools.pairwise(keyframes):
        if t0 <= t <= t1:
            # Geometric steps: an oplog shrinks (or grows) by a share of itself.
            return float(
                math.exp(math.log(v0) + (math.log(v1) - math.log(v0)) * (t - t0) / (t1 - t0))
            )
    return float(DEFAULT_OPLOG_WINDOW_S)


def steady_lag_ms(member: int, elapsed_s: float) -> float:
    """Secondaries 300-500 ms behind, whatever the time."""
    return 300 + 200 * ((elapsed_s / 7 + member / 3) % 1)


def connection_string(replica_set: SimulatedReplicaSet) -> str:
    """`rsName/host:port,...`, as listShards and getShardMap write a replica set."""
    return f"{replica_set.set_name}/{','.join(replica_set.hosts)}"


@dataclass
class SimulatedShardedCluster:
    """A mongos in front of `shards` (each named by its set name) and a config server set."""

    shards: list[SimulatedReplicaSet] = field(default_factory=list)
    config_servers: SimulatedReplicaSet | None = None
    port: int = 0
    failures: dict[str, CommandFailure] = field(default_factory=dict)
    server: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(
        cls,
        shards: int = 2,
        members: int = 3,
        config_members: int = 3,
        lag_fn: LagFn = demo_lag_ms,
    ) -> SimulatedShardedCluster:
        """A cluster of `shards` replica sets shard01, shard02, ... of `members` each."""
        return cls(
            shards=[
                SimulatedReplicaSet(size=members, set_name=f"shard{i:02d}", lag_fn=lag_fn)
                for i in range(1, shards + 1)
            ],
            config_servers=SimulatedReplicaSet(
                size=config_members, set_name="configRepl", lag_fn=lag_fn
            )
            if config_members
            else None,
        )

    @classmethod
    def demo(cls) -> SimulatedShardedCluster:
        """Two shards with steady lags; shard02 has a hidden member delayed by an hour and an
        oplog that shrinks and grows again (`demo_oplog_window_s`)."""
        cluster = cls.build(lag_fn=steady_lag_ms)
        drifting = cluster.shard(DEMO_DRIFTING_SHARD)
        drifting.oplog_window_fn = demo_oplog_window_s
        drifting.members = [
            SimulatedMember(index=i, state=1 if i == 0 else 2) for i in range(drifting.size)
        ]
        drifting.members[-1].delay_s = DEMO_DELAY_S
        drifting.members[-1].hidden = True
        return cluster

    def shard(self, name: str) -> SimulatedReplicaSet:
        """The shard called `name`."""
        return next(s for s in self.shards if s.set_name == name)

    @property
    def replica_sets(self) -> list[SimulatedReplicaSet]:
        """Every replica set of the cluster: the shards, then the config servers."""
        return [*self.shards, *([self.config_servers] if self.config_servers else [])]

    def start(self) -> SimulatedShardedCluster:
        """Start every replica set, then the mongos."""
        for replica_set in self.replica_sets:
            replica_set.start()
        self.server = MockupDB(port=self.port or None, auto_ismaster=False, request_timeout=3600)
        self.server.autoresponds(self._respond)
        self.port = self.server.run()
        return self

    def stop(self) -> None:
        """Stop the mongos and every member, in parallel."""
        stops = [m.server.stop for rs in self.replica_sets for m in rs.members if m.server]
        if self.server is not None:
            stops.append(self.server.stop)
        threads = [threading.Thread(target=stop) for stop in stops]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for replica_set in self.replica_sets:
            for member in replica_set.members:
                member.server = None
        self.server = None

    def __enter__(self) -> SimulatedShardedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """The mongos' host:port."""
        return f"127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        """The URI of the mongos."""
        return f"mongodb://{self.address}/"

    def add_shard(self, replica_set: SimulatedReplicaSet) -> None:
        """Start `replica_set` and list it as a shard from now on."""
        replica_set.start()
        with self._lock:
            self.shards.append(replica_set)

    def remove_shard(self, name: str) -> SimulatedReplicaSet:
        """No longer list shard `name` (its servers keep running: stop them yourself)."""
        with self._lock:
            removed = self.shard(name)
            self.shards.remove(removed)
        return removed

    def fail(self, command: str, code: int, code_name: str, errmsg: str) -> None:
        """Make the mongos fail `command` with this error."""
        with self._lock:
            self.failures[command] = CommandFailure(code, code_name, errmsg)

    # What the mongos answers -----------------------------------------------------------------

    def _respond(self, request: Any) -> bool:
        name = str(request.command_name or "")
        lowered = name.lower()
        if lowered in ("hello", "ismaster"):
            return bool(request.ok(self._hello()))
        if lowered in ("endsessions", "ping", "buildinfo", "getparameter"):
            return bool(request.ok({}))
        with self._lock:
            failure = self.failures.get(name)
            shards = list(self.shards)
        if failure is not None:
            return bool(
                request.command_err(
                    code=failure.code, errmsg=failure.errmsg, codeName=failure.code_name
                )
            )
        if name == "listShards":
            return bool(request.ok({"shards": [self._shard_doc(s) for s in shards]}))
        if name == "getShardMap":
            return bool(request.ok(self._shard_map(shards)))
        # A router does not run replica-set commands (replSetGetStatus): CommandNotFound.
        return bool(
            request.command_err(
                code=59, errmsg=f"no such command: '{name}'", codeName="CommandNotFound"
            )
        )

    def _hello(self) -> dict[str, Any]:
        return {
            "isWritablePrimary": True,
            "ismaster": True,
            "msg": "isdbgrid",
            "maxWireVersion": WIRE_VERSION,
            "minWireVersion": 0,
            "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48_000_000,
            "maxWriteBatchSize": 100_000,
            "logicalSessionTimeoutMinutes": 30,
            "localTime": dt.datetime.now(dt.UTC),
            "topologyVersion": {"processId": ObjectId(), "counter": 0},
        }

    @staticmethod
    def _shard_doc(shard: SimulatedReplicaSet) -> dict[str, Any]:
        return {
            "_id": shard.set_name,
            "host": connection_string(shard),
            "state": 1,
            "topologyTime": Timestamp(int(time.time()), 1),
        }

    def _shard_map(self, shards: list[SimulatedReplicaSet]) -> dict[str, Any]:
        shard_map: dict[str, str] = {}
        hosts: dict[str, str] = {}
        named = [(s.set_name, s) for s in shards]
        if self.config_servers is not None:
            named.append(("config", self.config_servers))
        for name, replica_set in named:
            shard_map[name] = connection_string(replica_set)
            for host in replica_set.hosts:
                shard_map[host] = connection_string(replica_set)
                hosts[host] = name
        return {
            "map": shard_map,
            "hosts": hosts,
            "connStrings": {connection_string(rs): name for name, rs in named},
        }
