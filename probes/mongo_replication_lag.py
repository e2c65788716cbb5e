"""MongoDB replica-set replication lag, per member, in milliseconds.

Runs `replSetGetStatus` and `replSetGetConfig` through PyMongo's asyncio client and joins
their members by `_id`. Measuring (`measure_replica_set`) and grading
(`grade_mongo_replication_lag`) are pure functions of the two replies, so recorded replies
test them without a server.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymongo
from bson.datetime_ms import DatetimeMS
from bson.errors import BSONError
from pymongo import errors as mongo_errors

from probes.base import Observation, ProbeContext, reading_reply
from schemas.context_spec import MongoReplicationLagSpec, connection_env_var
from zeroprobe.durations import format_duration
from zeroprobe.errors import (
    ProbeConfigError,
    ProbeConnectionError,
    ProbeError,
    ProbeReplyError,
    ProbeTimeoutError,
)
from zeroprobe.grading import Grade, Line, grade_value

if TYPE_CHECKING:
    from zeroprobe.metrics import Metrics

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
PRIMARY, SECONDARY, ARBITER = 1, 2, 7
UNREACHABLE_STATES = frozenset({6, 8})
TRANSITIONAL_STATES = frozenset({0, 3, 5, 9, 10})

# The share of the probe's timeout given to the driver, so that its own, more precise error
# (connection refused, no primary) arrives before the runner's timeout fires.
DRIVER_TIMEOUT_SHARE = 0.8
# PyMongo re-checks a server it cannot reach at most every 0.5 s (its minimum heartbeat), so
# a server-selection error surfaces up to 0.5 s after the driver's deadline: leave that margin.
DRIVER_MARGIN_S = 0.6


def driver_timeout_s(timeout_s: float) -> float:
    """The part of the probe's timeout given to the driver (pymongo.timeout)."""
    return max(timeout_s * 0.4, min(timeout_s * DRIVER_TIMEOUT_SHARE, timeout_s - DRIVER_MARGIN_S))


@dataclass(frozen=True, slots=True)
class MemberReading:
    """What was measured of one member. `lag_ms` is None when no lag applies or is known."""

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


@dataclass(frozen=True, slots=True)
class ReplicaSetObservation(Observation):
    """Every member's reading, and what the lags were measured against."""

    set_name: str
    members: tuple[MemberReading, ...]
    has_primary: bool
    reference_name: str | None  # the member whose time is the reference; None: no reference


def measure_replica_set(
    status: Mapping[str, Any], config: Mapping[str, Any]
) -> ReplicaSetObservation:
    """Join replSetGetStatus and replSetGetConfig replies into per-member readings."""
    members = status.get("members")
    if not isinstance(members, list) or not members:
        raise ProbeReplyError("malformed replSetGetStatus reply: no members list")
    config_doc = config.get("config", config)
    config_members = config_doc.get("members", []) if isinstance(config_doc, Mapping) else []
    by_id: dict[Any, Mapping[str, Any]] = {
        m.get("_id"): m for m in config_members if isinstance(m, Mapping)
    }

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
        t = times[index]
        if condition == "secondary" and t is not None and reference_ms is not None:
            # Never abs(): a secondary ahead of the reference (clock skew) has no lag.
            lag_ms = max(0, reference_ms - t - round(delay_s * 1000))
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
            )
        )

    return ReplicaSetObservation(
        set_name=str(status.get("set", "")),
        members=tuple(readings),
        has_primary=bool(primaries),
        reference_name=str(members[reference_index]["name"])
        if reference_index is not None
        else None,
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


def grade_mongo_replication_lag(
    observation: ReplicaSetObservation, spec: MongoReplicationLagSpec
) -> list[Line]:
    """One line per member (status order), a "no primary" line first when there is none."""
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
            lines.append(Line(f"- {role} {r.name}{labels} unreachable", Grade.RED))
        elif r.condition == "transitional":
            lines.append(Line(f"- Member {r.name}{labels} in state {r.state_name}", Grade.YELLOW))
        elif r.condition == "secondary" and r.lag_ms is not None:
            grade = grade_value(r.lag_ms, bands)
            lines.append(Line(f"- Secondary {r.name}{labels} replication lag {r.lag_ms}ms", grade))
        elif r.condition == "secondary":
            reason = "no optime" if observation.reference_name else "no reference optime"
            lines.append(Line(f"- Secondary {r.name}{labels} lag unknown: {reason}", Grade.RED))
        else:
            lines.append(Line(f"- Member {r.name}{labels} in state {r.state_name}", Grade.YELLOW))
    return lines


def export_mongo_replication_lag(
    observation: ReplicaSetObservation, spec: MongoReplicationLagSpec, metrics: Metrics
) -> None:
    """Publish each measured member's lag as zeroprobe_mongo_replication_lag_seconds."""
    lags = {r.name: r.lag_ms / 1000 for r in observation.members if r.lag_ms is not None}
    metrics.set_member_lags(spec.service_id, lags)


def forget_mongo_replication_lag(service_id: str, metrics: Metrics) -> None:
    """Drop the lag series of a service whose probe could not measure."""
    metrics.set_member_lags(service_id, {})


async def probe_mongo_replication_lag(
    spec: MongoReplicationLagSpec, ctx: ProbeContext
) -> ReplicaSetObservation:
    """Measure the replica set behind `spec.connection`."""
    client = ctx.mongo.get(spec.connection)
    try:
        with pymongo.timeout(driver_timeout_s(spec.timeout_s)):
            status = await client.admin.command("replSetGetStatus")
            config = await client.admin.command("replSetGetConfig")
    except mongo_errors.PyMongoError as exc:
        raise map_mongo_error(exc, spec, ctx) from None
    except BSONError:
        raise ProbeReplyError("unreadable reply from MongoDB: not valid BSON") from None
    with reading_reply("MongoDB (replSetGetStatus / replSetGetConfig)"):
        return measure_replica_set(status, config)


_OPERATION_LINES = {
    76: "replication is not enabled: the server is not running with --replSet "
    "(NoReplicationEnabled, code 76)",
    94: "the replica set is not initialized yet: run rs.initiate() (NotYetInitialized, code 94)",
    13: "not authorized to read replica-set status: the user needs the clusterMonitor role "
    "(Unauthorized, code 13)",
    # The server's own words are not quoted: they may echo the user name or the mechanism.
    18: "MongoDB refused the credentials: check the user, password and authSource of the "
    "connection (AuthenticationFailed, code 18)",
}
_REFUSED = re.compile(r"Connection refused|Connect call failed|Errno 111", re.IGNORECASE)
_DNS = re.compile(
    r"Name or service not known|nodename nor servname|Temporary failure in name resolution"
    r"|No address associated|getaddrinfo failed|DNS",
    re.IGNORECASE,
)


def map_mongo_error(
    exc: mongo_errors.PyMongoError, spec: MongoReplicationLagSpec, ctx: ProbeContext
) -> ProbeError:
    """A PyMongo error as one plain-English line, credentials removed."""
    detail = ctx.redact(_first_reason(str(exc)))
    if isinstance(exc, mongo_errors.OperationFailure):
        code = exc.code or 0
        if code in _OPERATION_LINES:
            return ProbeReplyError(_OPERATION_LINES[code])
        code_name = (exc.details or {}).get("codeName") or "error"
        errmsg = (exc.details or {}).get("errmsg") or str(exc)
        return ProbeReplyError(
            f"MongoDB refused the command: {ctx.redact(str(errmsg))} ({code_name}, code {code})"
        )
    if isinstance(exc, mongo_errors.ServerSelectionTimeoutError):
        return ProbeConnectionError(ctx.redact(_selection_failure(str(exc), spec)))
    if isinstance(exc, mongo_errors.ConfigurationError) and "wire version" in str(exc):
        return ProbeReplyError(f"server version not supported by the driver: {detail}")
    if isinstance(exc, mongo_errors.ConfigurationError):
        return ProbeConfigError(
            f"invalid MongoDB settings in {connection_env_var(spec.connection)}: {detail}"
        )
    if exc.timeout:
        return ProbeTimeoutError(
            f"MongoDB did not answer within {driver_timeout_s(spec.timeout_s):g}s ({detail})"
        )
    if isinstance(exc, mongo_errors.ConnectionFailure):
        return ProbeConnectionError(f"connection to MongoDB lost: {detail}")
    if isinstance(exc, mongo_errors.ProtocolError | mongo_errors.InvalidOperation):
        return ProbeReplyError(f"unreadable reply from MongoDB: {detail}")
    return ProbeReplyError(f"MongoDB error: {detail}")


_SERVER = re.compile(
    r"<ServerDescription \('(?P<host>[^']+)', (?P<port>\d+)\) server_type: (?P<type>\w+)"
    r"(?P<rest>[^>]*)>"
)
_SERVER_TYPES = {
    "RSPrimary": "primary",
    "RSSecondary": "secondary",
    "RSArbiter": "arbiter",
    "RSGhost": "not yet in a replica set",
    "RSOther": "neither primary nor secondary",
    "Standalone": "standalone, not a replica-set member",
    "Mongos": "a mongos router",
}


_CERT_FAILED = re.compile(r"certificate verify failed: (?P<why>[^(')\]]+)", re.IGNORECASE)


def _unreachable_reason(text: str) -> str:
    """Why the driver could not talk to one server, from its error text, in words."""
    if _REFUSED.search(text):
        return "connection refused"
    if _DNS.search(text):
        return "host name not resolvable"
    cert = _CERT_FAILED.search(text)
    if cert:
        return f"TLS handshake failed: certificate verify failed: {cert['why'].strip()}"
    if "WRONG_VERSION_NUMBER" in text:
        return "TLS handshake failed: wrong version number (the server does not seem to speak TLS)"
    if re.search(r"\bSSL\b|TLS", text):
        return "TLS handshake failed"
    if "ProtocolError" in text or "message size" in text:
        return "answered something that is not the MongoDB wire protocol"
    if re.search(r"connection (is already )?closed|reset by peer|EOF", text, re.IGNORECASE):
        return "closed the connection"
    # Not "timeouts": every message lists the configured timeouts.
    if re.search(r"timed out", text, re.IGNORECASE):
        return "no answer (timed out)"
    if "error=" not in text:
        # The driver's first hello has not come back yet: the server accepted and is silent.
        return "no answer"
    return "unreachable"


def _selection_failure(message: str, spec: MongoReplicationLagSpec) -> str:
    """Say, per server the driver knows, why none could serve the command."""
    servers = [
        (
            f"{m['host']}:{m['port']}",
            _SERVER_TYPES.get(m["type"], m["type"])
            if m["type"] != "Unknown"
            else _unreachable_reason(m["rest"]),
        )
        for m in _SERVER.finditer(message)
    ]
    within = f"within {driver_timeout_s(spec.timeout_s):g}s"
    if not servers:
        return f"no MongoDB server reachable {within}: {_first_reason(message)}"
    reasons = {reason for _, reason in servers}
    hosts = ", ".join(host for host, _ in servers)
    if len(reasons) == 1 and next(iter(reasons)) == "connection refused":
        return f"cannot connect to MongoDB: connection refused by {hosts}"
    if len(reasons) == 1 and next(iter(reasons)) == "host name not resolvable":
        return f"cannot resolve the MongoDB host name of {hosts}"
    if len(servers) == 1:
        reason = servers[0][1]
        if reason.startswith("no answer"):
            return f"MongoDB at {hosts} did not answer {within}"
        return f"MongoDB at {hosts}: {reason}"
    summary = "; ".join(f"{host} {reason}" for host, reason in servers)
    if "match selector" in message:
        return f"no primary reachable {within}: {summary}"
    return f"no MongoDB server reachable {within}: {summary}"


def _first_reason(message: str) -> str:
    """Cut PyMongo's long messages (timeouts, topology dumps) down to the first reason."""
    message = message.split(", Timeout:", maxsplit=1)[0]
    message = re.sub(r"\s*\(configured timeouts:[^)]*\)", "", message)
    message = message.split(", full error:")[0]
    return message.strip()
