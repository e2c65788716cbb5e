"""Talking to PyMongo: how much of the probe's timeout the driver gets, and its errors mapped
to one plain-English line each, credentials removed."""

from __future__ import annotations

import re

from pymongo import errors as mongo_errors

from probes.base import ProbeContext
from probes.errors import (
    ProbeConfigError,
    ProbeConnectionError,
    ProbeError,
    ProbeReplyError,
    ProbeTimeoutError,
)
from schemas.context_spec import MongoReplicationLagSpec, connection_env_var

# The share of the probe's timeout given to the driver, so that its own, more precise error
# (connection refused, no primary) arrives before the runner's timeout fires.
DRIVER_TIMEOUT_SHARE = 0.8
# PyMongo re-checks a server it cannot reach at most every 0.5 s (its minimum heartbeat), so
# a server-selection error surfaces up to 0.5 s after the driver's deadline: leave that margin.
DRIVER_MARGIN_S = 0.6


def driver_timeout_s(timeout_s: float) -> float:
    """The part of the probe's timeout given to the driver (pymongo.timeout)."""
    return max(timeout_s * 0.4, min(timeout_s * DRIVER_TIMEOUT_SHARE, timeout_s - DRIVER_MARGIN_S))


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
