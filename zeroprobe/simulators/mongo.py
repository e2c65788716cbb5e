"""A simulated MongoDB replica set on loopback that speaks the real wire protocol.

Built on MockupDB (from MongoDB's driver team): every member is a real TCP server that
answers PyMongo's handshake, `replSetGetStatus`, `replSetGetConfig` and the two `find`s that
read the ends of `local.oplog.rs`, so the probe takes the same path as against a real replica
set. Used by `zeroprobe demo` and by the tests.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId, Timestamp
from mockupdb import MockupDB

# maxWireVersion 21 is MongoDB 7.0; PyMongo 4.x refuses servers below 9 (MongoDB 4.4).
WIRE_VERSION = 21
STATE_NAMES = {
    1: "PRIMARY",
    2: "SECONDARY",
    3: "RECOVERING",
    5: "STARTUP2",
    7: "ARBITER",
    8: "DOWN",
}

LagFn = Callable[[int, float], float]
#: Seconds since start -> the oplog window, in seconds.
WindowFn = Callable[[float], float]
#: The window of a healthy, busy set: 26h 14m.
DEFAULT_OPLOG_WINDOW_S = 26 * 3600 + 14 * 60


def demo_lag_ms(member: int, elapsed_s: float) -> float:
    """The demo's drift: member 1 goes GREEN -> YELLOW -> RED -> YELLOW -> GREEN every 4 min."""
    if member == 1:
        keyframes = [(0, 250), (45, 250), (105, 45_000), (135, 45_000), (195, 250), (240, 250)]
        t = elapsed_s % 240
        for (t0, v0), (t1, v1) in itertools.pairwise(keyframes):
            if t0 <= t <= t1:
                return v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    if member >= 2:
        return 300 + 200 * ((elapsed_s / 7) % 1)
    return 0.0


@dataclass
class SimulatedMember:
    """One member: its port stays the same across stop and restart."""

    index: int
    port: int = 0
    state: int = 2
    delay_s: int = 0
    hidden: bool = False
    server: Any = None
    fixed_lag_ms: float | None = None
    votes: int = 1
    #: A SECONDARY that found no member to sync from.
    no_sync_source: bool = False


@dataclass
class CommandFailure:
    """A reply with ok: 0 that a command will get instead of its document."""

    code: int
    code_name: str
    errmsg: str


@dataclass
class SimulatedReplicaSet:
    """A replica set of `size` members; member 0 starts as the primary."""

    size: int = 3
    set_name: str = "rs0"
    lag_fn: LagFn = demo_lag_ms
    members: list[SimulatedMember] = field(default_factory=list)
    #: Replace the computed replies with these documents (recorded replies in tests).
    status_reply: Mapping[str, Any] | None = None
    config_reply: Mapping[str, Any] | None = None
    failures: dict[str, CommandFailure] = field(default_factory=dict)
    #: Seconds a command waits before answering (a slow or hung server).
    reply_delay_s: float = 0.0
    #: The election term; `elect` raises it.
    term: int = 1
    #: The primary's oplog window (seconds); `oplog_window_fn` (of seconds since start) wins.
    oplog_window_s: float = DEFAULT_OPLOG_WINDOW_S
    oplog_window_fn: WindowFn | None = None
    #: Every `find` on local.oplog.rs: (index of the member asked, the command as sent).
    oplog_finds: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    _started_at: float = 0.0
    # The majority commit point (epoch seconds): it stays put while too few members apply.
    _committed_s: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> SimulatedReplicaSet:
        """Start every member on a free loopback port."""
        self._started_at = time.time()
        if not self.members:
            self.members = [
                SimulatedMember(index=i, state=1 if i == 0 else 2) for i in range(self.size)
            ]
        for member in self.members:
            self._serve(member)
        return self

    def _serve(self, member: SimulatedMember) -> None:
        server = MockupDB(port=member.port or None, auto_ismaster=False, request_timeout=3600)
        server.autoresponds(lambda request: self._respond(member, request))
        member.port = server.run()
        member.server = server

    @property
    def hosts(self) -> list[str]:
        """Every member's `host:port` as advertised in hello replies."""
        return [f"127.0.0.1:{m.port}" for m in self.members]

    @property
    def uri(self) -> str:
        """A replica-set URI: the driver discovers the members from the hello replies."""
        return f"mongodb://{','.join(self.hosts)}/?replicaSet={self.set_name}"

    def direct_uri(self, index: int = 0) -> str:
        """A URI that talks to one member only."""
        return f"mongodb://{self.hosts[index]}/?directConnection=true"

    def set_lag_ms(self, index: int, lag_ms: float | None) -> None:
        """Fix a member's lag (None: back to `lag_fn`)."""
        with self._lock:
            self.members[index].fixed_lag_ms = lag_ms

    def fail(self, command: str, code: int, code_name: str, errmsg: str) -> None:
        """Make `command` fail with this error until `clear_failures`."""
        with self._lock:
            self.failures[command] = CommandFailure(code, code_name, errmsg)

    def clear_failures(self) -> None:
        """Let every command succeed again."""
        with self._lock:
            self.failures.clear()

    def elect(self, index: int) -> None:
        """Make member `index` the primary in a new term; the old primary becomes a secondary."""
        with self._lock:
            for member in self.members:
                if member.state == 1:
                    member.state = 2
            self.members[index].state = 1
            self.term += 1

    def stop_member(self, index: int) -> None:
        """Stop one member's server (its port is kept for `restart_member`)."""
        member = self.members[index]
        if member.server is not None:
            member.server.stop()
            member.server = None

    def restart_member(self, index: int) -> None:
        """Serve a stopped member again on the same port."""
        member = self.members[index]
        if member.server is None:
            self._serve(member)

    def stop(self) -> None:
        """Stop every member, in parallel: MockupDB's accept loop takes up to 1 s to notice."""
        threads = [
            threading.Thread(target=self.stop_member, args=(index,))
            for index in range(len(self.members))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def __enter__(self) -> SimulatedReplicaSet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # What the members answer ----------------------------------------------------------------

    def _respond(self, member: SimulatedMember, request: Any) -> bool:
        name = str(request.command_name or "")
        lowered = name.lower()
        if lowered in ("hello", "ismaster"):
            return bool(request.ok(self._hello(member)))
        if lowered in ("endsessions", "ping", "buildinfo", "getparameter"):
            return bool(request.ok({}))
        if self.reply_delay_s:
            time.sleep(self.reply_delay_s)
        with self._lock:
            failure = self.failures.get(name)
        if failure is not None:
            return bool(
                request.command_err(
                    code=failure.code, errmsg=failure.errmsg, codeName=failure.code_name
                )
            )
        if name == "replSetGetStatus":
            return bool(request.ok(dict(self.status_reply or self._status(member))))
        if name == "replSetGetConfig":
            return bool(request.ok(dict(self.config_reply or self._config())))
        if name == "find" and request.doc.get("find") == "oplog.rs":
            return bool(request.ok(self._oplog_end(member, request.doc)))
        return bool(
            request.command_err(
                code=59, errmsg=f"no such command: '{name}'", codeName="CommandNotFound"
            )
        )

    def _primary(self) -> SimulatedMember | None:
        return next((m for m in self.members if m.state == 1), None)

    def _hello(self, member: SimulatedMember) -> dict[str, Any]:
        primary = self._primary()
        reply: dict[str, Any] = {
            "isWritablePrimary": member.state == 1,
            "ismaster": member.state == 1,
            "secondary": member.state == 2,
            "setName": self.set_name,
            "setVersion": 1,
            "hosts": [h for m, h in zip(self.members, self.hosts, strict=True) if m.state != 7],
            "me": self.hosts[member.index],
            "maxWireVersion": WIRE_VERSION,
            "minWireVersion": 0,
            "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": 48_000_000,
            "maxWriteBatchSize": 100_000,
            "logicalSessionTimeoutMinutes": 30,
            "localTime": dt.datetime.now(dt.UTC),
        }
        if primary is not None:
            reply["primary"] = self.hosts[primary.index]
        if member.state == 1:
            # The driver ignores a primary whose electionId is older than one it has seen.
            reply["electionId"] = ObjectId(f"7fffffff{self.term:016x}")
        if member.state == 7:
            reply["arbiterOnly"] = True
        return reply

    def _lag_ms(self, member: SimulatedMember, elapsed_s: float) -> float:
        if member.state == 1:
            return 0.0
        if member.fixed_lag_ms is not None:
            return member.fixed_lag_ms
        return self.lag_fn(member.index, elapsed_s)

    def _status(self, answering: SimulatedMember) -> dict[str, Any]:
        now = time.time()
        elapsed_s = now - self._started_at
        members = []
        applied: list[float] = []  # applied times of the healthy voting data members
        with self._lock:
            primary = self._primary()
            for m in self.members:
                state = m.state if m.server is not None else 8
                doc: dict[str, Any] = {
                    "_id": m.index,
                    "name": self.hosts[m.index],
                    "health": 1 if m.server is not None else 0,
                    "state": state,
                    "stateStr": STATE_NAMES.get(state, "UNKNOWN")
                    if state != 8
                    else "(not reachable/healthy)",
                    "uptime": int(elapsed_s),
                    "infoMessage": "",
                    "lastHeartbeatMessage": "",
                    "configVersion": 1,
                    "configTerm": self.term,
                }
                if state in (1, 2):
                    applied_s = now - (self._lag_ms(m, elapsed_s) + m.delay_s * 1000) / 1000
                    wall = _wall(applied_s)
                    doc["optime"] = {"ts": Timestamp(int(applied_s), 1), "t": self.term}
                    doc["optimeDate"] = wall.replace(microsecond=0)
                    doc["lastAppliedWallTime"] = wall
                    if m.votes > 0:
                        applied.append(applied_s)
                if state == 2:
                    source = None if m.no_sync_source else primary
                    doc["syncSourceHost"] = self.hosts[source.index] if source else ""
                    if source is None:
                        doc["infoMessage"] = "Could not find member to sync from"
                if state == 8:
                    doc["lastHeartbeatMessage"] = (
                        f"Error connecting to {self.hosts[m.index]} :: caused by :: "
                        "Connection refused"
                    )
                if m is answering:
                    doc["self"] = True
                members.append(doc)
            needed = self._write_majority()
            if len(applied) >= needed:
                self._committed_s = sorted(applied, reverse=True)[needed - 1]
            committed_s = self._committed_s if self._committed_s is not None else now
        return {
            "set": self.set_name,
            "date": dt.datetime.now(dt.UTC),
            "myState": answering.state,
            "term": self.term,
            "majorityVoteCount": sum(1 for m in self.members if m.votes) // 2 + 1,
            "writeMajorityCount": needed,
            "votingMembersCount": sum(1 for m in self.members if m.votes),
            "writableVotingMembersCount": sum(1 for m in self.members if m.votes and m.state != 7),
            "optimes": {
                "lastCommittedOpTime": {"ts": Timestamp(int(committed_s), 1), "t": self.term},
                "lastCommittedWallTime": _wall(committed_s),
            },
            "members": members,
        }

    def _write_majority(self) -> int:
        voting = [m for m in self.members if m.votes > 0]
        writable = sum(1 for m in voting if m.state != 7)
        return max(1, min(len(voting) // 2 + 1, writable))

    def window_s(self) -> float:
        """The primary's oplog window now."""
        if self.oplog_window_fn is not None:
            return self.oplog_window_fn(time.time() - self._started_at)
        return self.oplog_window_s

    def _oplog_end(self, member: SimulatedMember, command: Mapping[str, Any]) -> dict[str, Any]:
        """The first or the last oplog entry, as the `$natural` sort of the find asks."""
        with self._lock:
            self.oplog_finds.append((member.index, dict(command)))
        now = time.time()
        newest_first = dict(command.get("sort") or {}).get("$natural") == -1
        at_s = now if newest_first else now - self.window_s()
        entry = {"ts": Timestamp(int(at_s), 1), "t": self.term, "wall": _wall(at_s)}
        return {"cursor": {"id": 0, "ns": "local.oplog.rs", "firstBatch": [entry]}}

    def _config(self) -> dict[str, Any]:
        return {
            "config": {
                "_id": self.set_name,
                "version": 1,
                "members": [
                    {
                        "_id": m.index,
                        "host": self.hosts[m.index],
                        "arbiterOnly": m.state == 7,
                        "hidden": m.hidden,
                        "priority": 0 if (m.hidden or m.delay_s) else 1,
                        "secondaryDelaySecs": m.delay_s,
                        "votes": m.votes,
                    }
                    for m in self.members
                ],
            }
        }


def _wall(epoch_s: float) -> dt.datetime:
    """A BSON date (ms precision) for an epoch time."""
    return dt.datetime.fromtimestamp(round(epoch_s, 3), dt.UTC)
