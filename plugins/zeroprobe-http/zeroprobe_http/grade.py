"""Grading an endpoint (pure): one line per check, in the spec's order, the worst of its parts.

    - GET shop.example/health 200 in 84ms; certificate expires in 12 days
    - GET shop.example/health 503 Service Unavailable in 12ms (expected 200)
    - GET shop.example/api 200 in 2310ms (slower than 2s)
    - GET shop.example/health: the server did not answer within 8s

The URL is shown without its scheme, as every kind shows a target: the redactor blanks any
text holding a connection's whole value, and `https://shop.example/…` holds
`https://shop.example`. Over HTTPS the certificate's part says it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from zeroprobe.plugin import Grade, Line, Thresholds, format_duration, grade_value
from zeroprobe_http.probe import CheckObservation, EndpointObservation
from zeroprobe_http.spec import EndpointCheck, HttpEndpointSpec

DAY_S = 86400.0
HOUR_S = 3600.0


def grade_http_endpoint(observation: EndpointObservation, spec: HttpEndpointSpec) -> list[Line]:
    """One line per check, in the order the spec lists them."""
    return [
        grade_check(result, check, spec, verified=observation.tls_verified)
        for result, check in zip(observation.checks, spec.checks, strict=True)
    ]


def grade_check(
    result: CheckObservation, check: EndpointCheck, spec: HttpEndpointSpec, *, verified: bool
) -> Line:
    """The line of one check: status, response time, body, certificate; the worst grades it."""
    if result.error is not None:
        return Line(f"- {result.shown}: {result.error}", Grade.RED)
    grades: list[Grade] = []
    notes: list[str] = []
    status_ok = status_expected(result.status, check.expect_status)
    if status_ok:
        status = str(result.status)
    else:
        status = f"{result.status} {result.reason}".rstrip()
        expected = f"expected {expected_text(check.expect_status)}"
        if result.location:
            expected += f"; redirects to {result.location}"
        notes.append(expected)
        grades.append(Grade.RED)
    bands = Thresholds(yellow=check.response_time.yellow, red=check.response_time.red)
    time_grade = grade_value(result.elapsed_s, bands)
    if time_grade is not Grade.GREEN:
        bound = bands.red if time_grade is Grade.RED else bands.yellow
        notes.append(f"slower than {format_duration(bound)}")
    grades.append(time_grade)
    head = f"- {result.shown} {status} in {round(result.elapsed_s * 1000)}ms"
    parts = [f"{head} ({'; '.join(notes)})" if notes else head]
    # The body of an unexpected status (an error page) is not the page to judge.
    if status_ok:
        searched = f" in its first {size_text(result.body_bytes)}" if result.truncated else ""
        if result.body_match is False:
            parts.append(f"body does not match '{check.body_matches}'{searched}")
            grades.append(Grade.RED)
        if result.body_forbidden_match:
            parts.append(f"body matches '{check.body_not_matches}', which it must not")
            grades.append(Grade.RED)
    if result.https:
        text, grade = certificate_part(result, spec, verified=verified)
        parts.append(text)
        grades.append(grade)
    return Line("; ".join(parts), _worst(grades))


def certificate_part(
    result: CheckObservation, spec: HttpEndpointSpec, *, verified: bool
) -> tuple[str, Grade]:
    """`certificate expires in 12 days` and its grade, on whole days left."""
    unverified = "" if verified else " (not verified)"
    if result.certificate_problem:
        return f"certificate {result.certificate_problem}", Grade.YELLOW
    expires_in_s = result.certificate_expires_in_s
    if expires_in_s is None:
        return "certificate not seen", Grade.YELLOW
    if expires_in_s <= 0:
        return f"certificate expired {span_text(-expires_in_s)} ago{unverified}", Grade.RED
    days = math.floor(expires_in_s / DAY_S)
    if days <= spec.certificate.red_days:
        grade = Grade.RED
    elif days <= spec.certificate.yellow_days:
        grade = Grade.YELLOW
    else:
        grade = Grade.GREEN
    return f"certificate expires in {span_text(expires_in_s)}{unverified}", grade


def status_expected(status: int, expected: Iterable[int | str]) -> bool:
    """Whether `status` is one of the codes or classes ('2xx') of `expected`."""
    for item in expected:
        if isinstance(item, int):
            if status == item:
                return True
        elif str(status)[:1] == item[:1]:
            return True
    return False


def expected_text(expected: Iterable[int | str]) -> str:
    """`200`, `200 or 204`, `200, 204 or 3xx`."""
    words = [str(item) for item in expected]
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


def span_text(seconds: float) -> str:
    """`12 days`, `1 day`, `5 hours`, `less than an hour`: whole units, rounded down."""
    for unit_s, unit in ((DAY_S, "day"), (HOUR_S, "hour")):
        count = math.floor(seconds / unit_s)
        if count >= 1:
            return f"{count} {unit}" + ("s" if count != 1 else "")
    return "less than an hour"


def size_text(size_bytes: int) -> str:
    """`4 MiB`, `512 KiB`, `100 bytes`."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size_bytes >= scale and size_bytes % scale == 0:
            return f"{size_bytes // scale} {unit}"
    return f"{size_bytes} bytes"


def _worst(grades: Iterable[Grade]) -> Grade:
    return max(grades, key=lambda grade: grade.rank, default=Grade.GREEN)
