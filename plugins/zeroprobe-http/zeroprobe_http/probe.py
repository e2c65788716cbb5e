"""Measuring an endpoint: every check's request at once, each on a connection of its own.

`probe_http_endpoint` sends the requests through zeroprobe's shared HTTP client (capped
reads, timeouts, plain-English errors, credentials from the connection) and
`measure_check` (pure) turns each reply into a `CheckObservation`: status, time, whether
the body matched, when the certificate expires. A request that fails is an observation too,
with the reason; grading (grade.py) makes the lines.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from cryptography import x509

from zeroprobe.plugin import (
    HttpClient,
    HttpTarget,
    MeasuredReply,
    Observation,
    ProbeConfigError,
    ProbeContext,
    ProbeError,
    one_line,
    request_timeout_s,
)
from zeroprobe_http.spec import EndpointCheck, HttpEndpointSpec

#: How the lines name the other end in a failure: the URL is already at the start of the line.
SERVER = "the server"
#: How much of a redirect's Location a line quotes.
LOCATION_CHARS = 100
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CheckObservation:
    """What one check's request measured, or why it could not (`error`)."""

    #: `GET /health`, as the spec names the check (the metrics' label).
    name: str
    #: `GET shop.example/health`, as the line shows it: never credentials.
    shown: str
    error: str | None = None
    status: int = 0
    reason: str = ""
    elapsed_s: float = 0.0
    #: Where a 3xx reply points, on one line, shortened.
    location: str = ""
    #: Whether body_matches was found; None when the check has none (or was not searched).
    body_match: bool | None = None
    #: Whether body_not_matches was found; None when the check has none.
    body_forbidden_match: bool | None = None
    #: The body was longer than the client's cap: only `body_bytes` of it were searched.
    truncated: bool = False
    body_bytes: int = 0
    https: bool = False
    #: When the server's certificate expires (epoch seconds), and how long that was from now.
    certificate_not_after_s: float | None = None
    certificate_expires_in_s: float | None = None
    #: Why the certificate could not be read, when it could not.
    certificate_problem: str = ""


@dataclass(frozen=True, slots=True)
class EndpointObservation(Observation):
    """Every check of the spec, in the spec's order."""

    checks: tuple[CheckObservation, ...]
    #: Whether certificates were verified (tls_verify): a line says when they were not.
    tls_verified: bool = True


async def probe_http_endpoint(spec: HttpEndpointSpec, ctx: ProbeContext) -> EndpointObservation:
    """Send every check's request to the base URL of `spec.connection`, all at once."""
    target = ctx.http.target(spec.connection, spec.bearer_token_env)
    timeout_s = request_timeout_s(spec.timeout_s)
    outcomes = await asyncio.gather(
        *(_run_check(ctx.http, target, check, spec, timeout_s) for check in spec.checks),
        return_exceptions=True,
    )
    checks: list[CheckObservation] = []
    for outcome in outcomes:
        # A configuration error (an unreadable tls_ca_file) is the same for every check: one
        # line for the probe. Anything else unexpected is the runner's to report.
        if isinstance(outcome, BaseException):
            raise outcome
        checks.append(outcome)
    return EndpointObservation(checks=tuple(checks), tls_verified=spec.tls_verify)


async def _run_check(
    http: HttpClient,
    target: HttpTarget,
    check: EndpointCheck,
    spec: HttpEndpointSpec,
    timeout_s: float,
) -> CheckObservation:
    shown = f"{check.method} {target.display}{check.path}"
    parts = urlsplit(check.path)
    try:
        reply = await http.request(
            target,
            check.method,
            unquote(parts.path),
            where=SERVER,
            timeout_s=timeout_s,
            params=parse_qsl(parts.query, keep_blank_values=True),
            tls_verify=spec.tls_verify,
            tls_ca_file=spec.tls_ca_file,
        )
    except ProbeConfigError:
        raise
    except ProbeError as exc:
        return CheckObservation(name=check.name, shown=shown, error=str(exc))
    return measure_check(
        reply, check, shown=shown, https=target.base_url.scheme == "https", now_s=time.time()
    )


def measure_check(
    reply: MeasuredReply, check: EndpointCheck, *, shown: str, https: bool, now_s: float
) -> CheckObservation:
    """What `reply` tells about `check` (pure: `now_s` is when it arrived)."""
    location = ""
    if 300 <= reply.status < 400:
        location = one_line(reply.headers.get("location", "")).strip()
        if len(location) > LOCATION_CHARS:
            location = location[: LOCATION_CHARS - 1] + "…"
    body_match = forbidden_match = None
    if check.body_matches is not None or check.body_not_matches is not None:
        text = decode_body(reply)
        if check.body_matches is not None:
            body_match = re.search(check.body_matches, text) is not None
        if check.body_not_matches is not None:
            forbidden_match = re.search(check.body_not_matches, text) is not None
    not_after_s: float | None = None
    problem = ""
    if reply.peer_certificate is not None:
        try:
            not_after_s = certificate_not_after_s(reply.peer_certificate)
        except ValueError:
            problem = "could not be read (not a valid X.509 certificate)"
    return CheckObservation(
        name=check.name,
        shown=shown,
        status=reply.status,
        reason=reply.reason,
        elapsed_s=reply.elapsed_s,
        location=location,
        body_match=body_match,
        body_forbidden_match=forbidden_match,
        truncated=reply.truncated,
        body_bytes=len(reply.body),
        https=https,
        certificate_not_after_s=not_after_s,
        certificate_expires_in_s=None if not_after_s is None else not_after_s - now_s,
        certificate_problem=problem,
    )


def decode_body(reply: MeasuredReply) -> str:
    """The body as text: in the charset its Content-Type names, else UTF-8; never failing."""
    found = _CHARSET.search(reply.headers.get("content-type", ""))
    try:
        return reply.body.decode(found[1] if found else "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know (or not a text one): UTF-8 is likeliest
        return reply.body.decode("utf-8", errors="replace")


def certificate_not_after_s(der: bytes) -> float:
    """The notAfter of a DER certificate, in epoch seconds; ValueError when unreadable."""
    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
