"""One replica set: per-member lag from `replSetGetStatus` and `replSetGetConfig`, joined by
`_id`, and what the set as a whole says (majority at risk, commit point, oplog, elections).

Measuring (`measure_replica_set`) and grading (`grade_replica_set`) are pure functions of the
two replies (and of the oplog reading and elections the probe adds), so recorded replies test
them without a server.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson.datetime_ms import DatetimeMS

from probes.base import Observation
from probes.errors import ProbeReplyError
from probes.mongo_replication_lag.elections import Election, grade_elections
from probes.mongo_replication_lag.oplog import OplogReading, grade_oplog, headroom_s
from probes.mongo_replication_lag.words import format_bytes, format_span, quote
from schemas.context_spec import MongoReplicationLagSpec
from schemas.durations import format_duration
from schemas.grading import Grade, Line, grade_value

STATE_NAMES = {
    0: "STARTUP",
    1: "PRIMARY",
    2: "SECONDARY",
    3: "RECOVERING",
    5: "STARTUP2",
    6: "UNKNOWN",
    7: "ARBITER",
    8: "DOWN",
    9: "ROLLBACK",
    10: "REMOVED",
}
PRIMARY, SECONDARY, STARTUP2, ARBITER = 1, 2, 5, 7
UNREACHABLE_STATES = frozenset({6, 8})
TRANSITIONAL_STATES = frozenset({0, 3, 5, 9, 10})


@dataclass(frozen=True, slots=True)
class MemberReading:
    """What was measured of one member. `lag_ms` is None when no lag applies or is known;
    `behind_ms` is how far its last write is behind the reference, delay included."""

    member_id: int
    name: str
    state: int
    state_name: str
    condition: str  # primary | arbiter | unreachable | transitional | secondary | other
    lag_ms: int | None = None
    hidden: bool = False
    delay_s: float = 0.0
    arbiter_only: bool = False
    no_optime: bool = False
    behind_ms: int | None = None
    votes: int = 1
    #: Why the set cannot reach it, in MongoDB's words (`lastHeartbeatMessage`).
    heartbeat_message: str = ""
    #: A SECONDARY of a set with a primary, without a sync source (`syncSourceHost` empty).
    no_sync_source: bool = False
    info_message: str = ""
    #: Initial-sync progress of a STARTUP2 member, when its `initialSyncStatus` tells.
    initial_sync: str = ""


@dataclass(frozen=True, slots=True)
class ReplicaSetObservation(Observation):
    """Every member's reading, what the lags were measured against, and the set's figures."""

    set_name: str
    members: tuple[MemberReading, ...]
    has_primary: bool
    reference_name: str | None  # the member whose time is the reference; None: no reference
    term: int | None = None
    #: Data-bearing voting members `w: "majority"` needs (`writeMajorityCount`).
    write_majority: int | None = None
    #: Members with health 1, PRIMARY or SECONDARY, votes > 0.
    healthy_voters: int = 0
    #: The primary's last write minus the majority commit point (`lastCommittedWallTime`).
    commit_lag_ms: int | None = None
    #: The member that answered `replSetGetStatus` (`self: true`), and whether it is the primary.
    answered_by: str | None = None
    answered_by_primary: bool = False
    oplog: OplogReading | None = None
    elections: tuple[Election, ...] = ()

    @property
    def primary_name(self) -> str | None:
        """The primary's name, if the set has one."""
        return next((m.name for m in self.members if m.condition == "primary"), None)


def measure_replica_set(
    status: Mapping[str, Any], config: Mapping[str, Any]
) -> ReplicaSetObservation:
    """Join replSetGetStatus and replSetGetConfig replies into per-member readings."""
    members = status.get("members")
    if not isinstance(members, list) or not members:
        raise ProbeReplyError("malformed replSetGetStatus reply: no members list")
    config_doc = config.get("config", config)
    config_members = config_doc.get("members", []) if isinstance(config_doc, Mapping) else []
    config_members = [m for m in config_members if isinstance(m, Mapping)]
    by_id: dict[Any, Mapping[str, Any]] = {m.get("_id"): m for m in config_members}

    times: dict[int, int | None] = {}
    for index, member in enumerate(members):
        if not isinstance(member, Mapping) or "name" not in member or "state" not in member:
            raise ProbeReplyError(
                f"malformed replSetGetStatus reply: member #{index} lacks name or state"
            )
        times[index] = member_time_ms(member)

    def healthy(m: Mapping[str, Any]) -> bool:
        return _int(m.get("health", 1)) != 0

    # State 1 is the primary, as the first matching rule says, whatever its health field.
    primaries = [i for i, m in enumerate(members) if _int(m["state"]) == PRIMARY]
    reference_index: int | None = None
    timed_primaries = [i for i in primaries if times[i] is not None]
    if timed_primaries:
        reference_index = max(timed_primaries, key=lambda i: times[i] or 0)
    else:
        candidates = [
            i
            for i, m in enumerate(members)
            if _int(m["state"]) == SECONDARY and healthy(m) and times[i] is not None
        ]
        if candidates:
            reference_index = max(candidates, key=lambda i: times[i] or 0)
    reference_ms = times[reference_index] if reference_index is not None else None

    sync_progress = _initial_sync_progress(status.get("initialSyncStatus"))
    readings = []
    for index, member in enumerate(members):
        member_id = _int(member.get("_id", index))
        cfg = by_id.get(member.get("_id"), {})
        state = _int(member["state"])
        state_name = STATE_NAMES.get(state) or str(member.get("stateStr") or f"state {state}")
        hidden = bool(cfg.get("hidden", False))
        delay_s = _delay_s(cfg)
        arbiter_only = bool(cfg.get("arbiterOnly", False))
        condition = _condition(state, healthy(member))
        lag_ms: int | None = 0 if condition == "primary" else None
        behind_ms: int | None = None
        t = times[index]
        if condition == "secondary" and t is not None and reference_ms is not None:
            # Never abs(): a secondary ahead of the reference (clock skew) has no lag.
            behind_ms = max(0, reference_ms - t)
            lag_ms = max(0, reference_ms - t - round(delay_s * 1000))
        source = member.get("syncSourceHost", member.get("syncingTo"))
        readings.append(
            MemberReading(
                member_id=member_id,
                name=str(member["name"]),
                state=state,
                state_name=state_name,
                condition=condition,
                lag_ms=lag_ms,
                hidden=hidden,
                delay_s=delay_s,
                arbiter_only=arbiter_only,
                no_optime=condition == "secondary" and lag_ms is None,
                behind_ms=behind_ms,
                votes=_votes(cfg),
                heartbeat_message=quote(member.get("lastHeartbeatMessage"))
                if condition == "unreachable"
                else "",
                # Without a primary no secondary has a source: the "No primary" line says it.
                no_sync_source=condition == "secondary" and bool(primaries) and source == "",
                info_message=quote(member.get("infoMessage")),
                # initialSyncStatus is about the member that answered.
                initial_sync=sync_progress if state == STARTUP2 and member.get("self") else "",
            )
        )

    primary_ms = times[reference_index] if reference_index in primaries else None
    committed_ms = _epoch_ms(_mapping(status.get("optimes")).get("lastCommittedWallTime"))
    return ReplicaSetObservation(
        set_name=str(status.get("set", "")),
        members=tuple(readings),
        has_primary=bool(primaries),
        reference_name=str(members[reference_index]["name"])
        if reference_index is not None
        else None,
        term=_optional_int(status.get("term")),
        write_majority=_write_majority(status, config_members),
        healthy_voters=sum(
            1
            for r, m in zip(readings, members, strict=True)
            if healthy(m) and r.state in (PRIMARY, SECONDARY) and r.votes > 0
        ),
        commit_lag_ms=max(0, primary_ms - committed_ms)
        if primary_ms is not None and committed_ms is not None
        else None,
        answered_by=next((str(m["name"]) for m in members if m.get("self")), None),
        answered_by_primary=_answered_by_primary(status, members),
    )


def _condition(state: int, healthy: bool) -> str:
    """The first matching rule of ARCHITECTURE.md wins."""
    if state == PRIMARY:
        return "primary"
    if state == ARBITER:
        return "arbiter"
    if not healthy or state in UNREACHABLE_STATES:
        return "unreachable"
    if state in TRANSITIONAL_STATES:
        return "transitional"
    if state == SECONDARY:
        return "secondary"
    return "other"


def member_time_ms(member: Mapping[str, Any]) -> int | None:
    """`lastAppliedWallTime` (ms precision) when present, else `optimeDate`; None: no optime."""
    for key in ("lastAppliedWallTime", "optimeDate"):
        ms = _epoch_ms(member.get(key))
        if ms is not None:
            return ms
    return None


def _epoch_ms(value: Any) -> int | None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        ms = round(value.timestamp() * 1000)
    elif isinstance(value, DatetimeMS):
        ms = int(value)
    else:
        return None
    # The 1970 epoch is how a member without an optime reports one.
    return ms if ms > 0 else None


def _delay_s(config_member: Mapping[str, Any]) -> float:
    for key in ("secondaryDelaySecs", "slaveDelay"):
        value = config_member.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 0.0


def _votes(config_member: Mapping[str, Any]) -> int:
    """A member's votes; MongoDB's default is 1."""
    votes = _optional_int(config_member.get("votes", 1))
    return 1 if votes is None else votes


def _write_majority(
    status: Mapping[str, Any], config_members: list[Mapping[str, Any]]
) -> int | None:
    """`writeMajorityCount` (MongoDB 4.2.1+), else worked out the server's way from the
    config: a majority of the voting members, at most the data-bearing voting members."""
    reported = _optional_int(status.get("writeMajorityCount"))
    if reported is not None and reported > 0:
        return reported
    voting = [m for m in config_members if _votes(m) > 0]
    if not voting:
        return None
    writable = sum(1 for m in voting if not m.get("arbiterOnly", False))
    return min(len(voting) // 2 + 1, writable)


def _answered_by_primary(status: Mapping[str, Any], members: list[Any]) -> bool:
    my_state = _optional_int(status.get("myState"))
    if my_state is not None:
        return my_state == PRIMARY
    return any(m.get("self") and _optional_int(m.get("state")) == PRIMARY for m in members)


def _initial_sync_progress(sync: Any) -> str:
    """`initialSyncStatus` in words: share and bytes copied, databases, time left."""
    if not isinstance(sync, Mapping):
        return ""
    parts: list[str] = []
    total, copied = (
        _number(sync.get(k)) for k in ("approxTotalDataSize", "approxTotalBytesCopied")
    )
    databases = _mapping(sync.get("databases"))
    cloned, to_clone = (
        _optional_int(databases.get(k)) for k in ("databasesCloned", "databasesToClone")
    )
    if total and copied is not None:
        share = int(min(copied / total, 1.0) * 100)
        parts.append(f"{share}% copied, {format_bytes(copied)} of {format_bytes(total)}")
    elif cloned is not None and to_clone:
        parts.append(f"{cloned} of {to_clone} databases cloned")
    remaining_ms = _number(sync.get("remainingInitialSyncEstimatedMillis"))
    if remaining_ms is not None:
        parts.append(f"about {format_span(remaining_ms / 1000)} left")
    failed = _optional_int(sync.get("failedInitialSyncAttempts"))
    if failed:
        parts.append(f"after {failed} failed attempt{'s' if failed > 1 else ''}")
    return ", ".join(parts)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _optional_int(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProbeReplyError(
            f"malformed replSetGetStatus reply: {value!r} is not a number"
        ) from None


def _labels(reading: MemberReading) -> str:
    labels = []
    if reading.hidden:
        labels.append("hidden")
    if reading.delay_s:
        labels.append(f"delayed {format_duration(reading.delay_s)}")
    return f" ({', '.join(labels)})" if labels else ""


def _at_least_yellow(grade: Grade) -> Grade:
    return grade if grade.rank >= Grade.YELLOW.rank else Grade.YELLOW


def grade_replica_set(
    observation: ReplicaSetObservation, spec: MongoReplicationLagSpec
) -> list[Line]:
    """One line per member (status order), a "no primary" line first when there is none, then
    the set's own lines: majority at risk, commit point behind, oplog window, elections."""
    return [*grade_members(observation, spec), *grade_set(observation, spec)]


def grade_members(observation: ReplicaSetObservation, spec: MongoReplicationLagSpec) -> list[Line]:
    """The replication-lag lines of ARCHITECTURE.md: one per member, "No primary" first."""
    bands = spec.thresholds.bands()
    lines: list[Line] = []
    if not observation.has_primary:
        against = (
            f"lags measured against the newest secondary {observation.reference_name}"
            if observation.reference_name
            else "no member has an optime to measure lag against"
        )
        lines.append(Line(f"- No primary: {against}", Grade.RED))
    for r in observation.members:
        labels = _labels(r)
        if r.condition == "primary":
            lines.append(Line(f"- Primary {r.name}{labels} replication lag 0ms", Grade.GREEN))
        elif r.condition == "arbiter":
            lines.append(Line(f"- Arbiter {r.name} (not graded: holds no data)", None))
        elif r.condition == "unreachable":
            role = "Arbiter" if r.arbiter_only else "Secondary"
            why = f": {r.heartbeat_message}" if r.heartbeat_message else ""
            lines.append(Line(f"- {role} {r.name}{labels} unreachable{why}", Grade.RED))
        elif r.condition == "transitional":
            progress = f" (initial sync: {r.initial_sync})" if r.initial_sync else ""
            lines.append(
                Line(f"- Member {r.name}{labels} in state {r.state_name}{progress}", Grade.YELLOW)
            )
        elif r.condition == "secondary":
            if r.lag_ms is not None:
                text = f"- Secondary {r.name}{labels} replication lag {r.lag_ms}ms"
                grade = grade_value(r.lag_ms, bands)
            else:
                reason = "no optime" if observation.reference_name else "no reference optime"
                text, grade = f"- Secondary {r.name}{labels} lag unknown: {reason}", Grade.RED
            if r.no_sync_source:
                # Not replicating: its lag can only grow.
                said = f": {r.info_message}" if r.info_message else ""
                text, grade = f"{text} (no sync source{said})", _at_least_yellow(grade)
            lines.append(Line(text, grade))
        else:
            lines.append(Line(f"- Member {r.name}{labels} in state {r.state_name}", Grade.YELLOW))
    return lines


def grade_set(observation: ReplicaSetObservation, spec: MongoReplicationLagSpec) -> list[Line]:
    """The set's own lines, after the members': only majority at risk and a commit point
    behind are problems worth a line; the oplog line is there whenever it was read."""
    lines: list[Line] = []
    needed, healthy = observation.write_majority, observation.healthy_voters
    if needed is not None and healthy < needed:
        lines.append(Line(f"- majority writes impossible: {healthy} of {needed} needed", Grade.RED))
    elif needed is not None and healthy == needed:
        lines.append(
            Line(
                "- no member can be lost without losing majority writes: "
                f"{healthy} of {needed} needed",
                Grade.YELLOW,
            )
        )
    if observation.commit_lag_ms is not None:
        grade = grade_value(observation.commit_lag_ms, spec.thresholds.bands())
        if grade is not Grade.GREEN:
            lines.append(
                Line(
                    f"- majority commit point {observation.commit_lag_ms}ms behind the primary "
                    f"{observation.primary_name}",
                    grade,
                )
            )
    if observation.oplog is not None:
        lines.append(
            grade_oplog(observation.oplog, secondaries_behind(observation), spec.oplog.bands())
        )
    election = grade_elections(observation.elections, spec.election_window)
    if election is not None:
        lines.append(election)
    return lines


def secondaries_behind(observation: ReplicaSetObservation) -> list[tuple[str, int]]:
    """(name, ms behind the primary, delay included) of every secondary with a known time."""
    return [
        (m.name, m.behind_ms)
        for m in observation.members
        if m.condition == "secondary" and m.behind_ms is not None
    ]


def headrooms_s(observation: ReplicaSetObservation) -> dict[str, float]:
    """Each measured secondary's headroom in the oplog window, when the window is known."""
    window_s = observation.oplog.window_s if observation.oplog is not None else None
    if window_s is None:
        return {}
    return {name: headroom_s(window_s, ms) for name, ms in secondaries_behind(observation)}
