"""Grading (pure): the line of a check from what was measured, and what a reply measures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from endpoint_helpers import DAY, SpecFactory, make_certificate
from zeroprobe_http.grade import grade_http_endpoint, span_text
from zeroprobe_http.kind import export_http_endpoint
from zeroprobe_http.probe import (
    CheckObservation,
    EndpointObservation,
    decode_body,
    measure_check,
)

from zeroprobe.plugin import Grade, Line, MeasuredReply

SHOWN = "GET shop.example/health"
HOUR_S = 3600.0
DAY_S = 86400.0
#: A little past whole days, as a certificate checked a moment after it was issued is.
MARGIN_S = 60.0


def observed(**fields: Any) -> CheckObservation:
    """A 200 in 84ms of GET /health over plain HTTP, with `fields` replaced."""
    values: dict[str, Any] = {
        "name": "GET /health",
        "shown": SHOWN,
        "status": 200,
        "reason": "OK",
        "elapsed_s": 0.084,
    }
    values.update(fields)
    return CheckObservation(**values)


def over_https(expires_in_s: float, **fields: Any) -> CheckObservation:
    now_s = 1_800_000_000.0
    return observed(
        https=True,
        certificate_not_after_s=now_s + expires_in_s,
        certificate_expires_in_s=expires_in_s,
        **fields,
    )


CHECK = {"path": "/health"}
CASES: list[tuple[str, dict[str, Any], CheckObservation, Line]] = [
    ("green", CHECK, observed(), Line(f"- {SHOWN} 200 in 84ms", Grade.GREEN)),
    (
        "unexpected-status",
        CHECK,
        observed(status=503, reason="Service Unavailable", elapsed_s=0.012),
        Line(f"- {SHOWN} 503 Service Unavailable in 12ms (expected 200)", Grade.RED),
    ),
    (
        "status-without-reason",
        CHECK,
        observed(status=599, reason=""),
        Line(f"- {SHOWN} 599 in 84ms (expected 200)", Grade.RED),
    ),
    (
        "status-of-an-expected-class",
        {**CHECK, "expect_status": [200, "2xx"]},
        observed(status=204, reason="No Content"),
        Line(f"- {SHOWN} 204 in 84ms", Grade.GREEN),
    ),
    (
        "status-outside-the-expected-ones",
        {**CHECK, "expect_status": [200, 204, "3xx"]},
        observed(status=404, reason="Not Found"),
        Line(f"- {SHOWN} 404 Not Found in 84ms (expected 200, 204 or 3xx)", Grade.RED),
    ),
    (
        "redirect-not-followed",
        CHECK,
        observed(status=302, reason="Found", location="https://shop.example/login"),
        Line(
            f"- {SHOWN} 302 Found in 84ms (expected 200; redirects to https://shop.example/login)",
            Grade.RED,
        ),
    ),
    (
        "just-below-yellow",
        CHECK,
        observed(elapsed_s=0.999),
        Line(f"- {SHOWN} 200 in 999ms", Grade.GREEN),
    ),
    (
        "at-yellow",
        CHECK,
        observed(elapsed_s=1.0),
        Line(f"- {SHOWN} 200 in 1000ms (slower than 1s)", Grade.YELLOW),
    ),
    (
        "slower-than-red",
        {**CHECK, "response_time": {"yellow": "500ms", "red": "2s"}},
        observed(elapsed_s=2.31),
        Line(f"- {SHOWN} 200 in 2310ms (slower than 2s)", Grade.RED),
    ),
    (
        "unexpected-and-slow",
        CHECK,
        observed(status=500, reason="Internal Server Error", elapsed_s=1.5),
        Line(
            f"- {SHOWN} 500 Internal Server Error in 1500ms (expected 200; slower than 1s)",
            Grade.RED,
        ),
    ),
    (
        "body-matches",
        {**CHECK, "body_matches": "ok"},
        observed(body_match=True),
        Line(f"- {SHOWN} 200 in 84ms", Grade.GREEN),
    ),
    (
        "body-does-not-match",
        {**CHECK, "body_matches": "ok"},
        observed(body_match=False),
        Line(f"- {SHOWN} 200 in 84ms; body does not match 'ok'", Grade.RED),
    ),
    (
        "body-does-not-match-in-its-first-4-mib",
        {**CHECK, "body_matches": "ok"},
        observed(body_match=False, truncated=True, body_bytes=4 * 1024 * 1024),
        Line(f"- {SHOWN} 200 in 84ms; body does not match 'ok' in its first 4 MiB", Grade.RED),
    ),
    (
        "body-matches-what-it-must-not",
        {**CHECK, "body_not_matches": "maintenance|error"},
        observed(body_forbidden_match=True),
        Line(
            f"- {SHOWN} 200 in 84ms; body matches 'maintenance|error', which it must not",
            Grade.RED,
        ),
    ),
    (
        "body-of-an-error-page-not-judged",
        {**CHECK, "body_matches": "ok"},
        observed(status=502, reason="Bad Gateway", body_match=False),
        Line(f"- {SHOWN} 502 Bad Gateway in 84ms (expected 200)", Grade.RED),
    ),
    (
        "certificate-60-days",
        CHECK,
        over_https(60 * DAY_S + MARGIN_S),
        Line(f"- {SHOWN} 200 in 84ms; certificate expires in 60 days", Grade.GREEN),
    ),
    (
        "certificate-15-days",
        CHECK,
        over_https(15 * DAY_S + MARGIN_S),
        Line(f"- {SHOWN} 200 in 84ms; certificate expires in 15 days", Grade.GREEN),
    ),
    (
        "certificate-14-days-at-yellow",
        CHECK,
        over_https(14 * DAY_S + MARGIN_S),
        Line(f"- {SHOWN} 200 in 84ms; certificate expires in 14 days", Grade.YELLOW),
    ),
    (
        "certificate-10-and-a-half-days",
        CHECK,
        over_https(10.5 * DAY_S),
        Line(f"- {SHOWN} 200 in 84ms; certificate expires in 10 days", Grade.YELLOW),
    ),
    (
        "certificate-8-days",
        CHECK,
        over_https(8 * DAY_S + MARGIN_S),
        Line(f"- {SHOWN} 200 in 84ms; certificate expires in 8 days", Grade.YELLOW),
    ),
    (
        "certificate-7-days-at-red",
        CHECK,
        over_https(7 * DAY_S + MARGIN_S),
        Line(f"- {SHOWN} 200 in 84ms; certificate expires in 7 days", Grade.RED),
    ),
    (
        "certificate-1-day",
        CHECK,
        over_https(DAY_S + MARGIN_S),
        Line(f"- {SHOWN} 200 in 84ms; certificate expires in 1 day", Grade.RED),
    ),
    (
        "certificate-5-hours",
        CHECK,
        over_https(5 * HOUR_S + MARGIN_S),
        Line(f"- {SHOWN} 200 in 84ms; certificate expires in 5 hours", Grade.RED),
    ),
    (
        "certificate-expired-3-days-ago",
        CHECK,
        over_https(-3 * DAY_S - MARGIN_S),
        Line(f"- {SHOWN} 200 in 84ms; certificate expired 3 days ago", Grade.RED),
    ),
    (
        "certificate-expired-minutes-ago",
        CHECK,
        over_https(-MARGIN_S),
        Line(f"- {SHOWN} 200 in 84ms; certificate expired less than an hour ago", Grade.RED),
    ),
    (
        "certificate-unreadable",
        CHECK,
        observed(
            https=True, certificate_problem="could not be read (not a valid X.509 certificate)"
        ),
        Line(
            f"- {SHOWN} 200 in 84ms; certificate could not be read (not a valid X.509 certificate)",
            Grade.YELLOW,
        ),
    ),
    (
        "certificate-not-seen",
        CHECK,
        observed(https=True),
        Line(f"- {SHOWN} 200 in 84ms; certificate not seen", Grade.YELLOW),
    ),
    (
        "worst-part-grades-the-line",
        {**CHECK, "body_matches": "ok"},
        over_https(10 * DAY_S + MARGIN_S, elapsed_s=1.2, body_match=False),
        Line(
            f"- {SHOWN} 200 in 1200ms (slower than 1s); body does not match 'ok'; certificate "
            "expires in 10 days",
            Grade.RED,
        ),
    ),
    (
        "slow-and-certificate-soon",
        CHECK,
        over_https(10 * DAY_S + MARGIN_S, elapsed_s=1.2),
        Line(
            f"- {SHOWN} 200 in 1200ms (slower than 1s); certificate expires in 10 days",
            Grade.YELLOW,
        ),
    ),
    (
        "request-failed",
        CHECK,
        observed(error="the server did not answer within 1.6s"),
        Line(f"- {SHOWN}: the server did not answer within 1.6s", Grade.RED),
    ),
]


@pytest.mark.parametrize(
    ("check", "result", "line"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_line_of_a_check(
    make_spec: SpecFactory, check: dict[str, Any], result: CheckObservation, line: Line
) -> None:
    spec = make_spec(checks=[check])

    assert grade_http_endpoint(EndpointObservation(checks=(result,)), spec) == [line]


def test_certificate_bands_are_the_spec_s(make_spec: SpecFactory) -> None:
    spec = make_spec(checks=[CHECK], certificate={"yellow_days": 30, "red_days": 20})

    def grade(days: float) -> Grade | None:
        result = over_https(days * DAY_S + MARGIN_S)
        return grade_http_endpoint(EndpointObservation(checks=(result,)), spec)[0].grade

    assert [grade(d) for d in (31, 30, 21, 20, 0)] == [
        Grade.GREEN,
        Grade.YELLOW,
        Grade.YELLOW,
        Grade.RED,
        Grade.RED,
    ]


def test_an_unverified_certificate_says_so(make_spec: SpecFactory) -> None:
    spec = make_spec(checks=[CHECK], tls_verify=False)
    observation = EndpointObservation(
        checks=(over_https(-3 * DAY_S - MARGIN_S),), tls_verified=False
    )

    assert grade_http_endpoint(observation, spec) == [
        Line(f"- {SHOWN} 200 in 84ms; certificate expired 3 days ago (not verified)", Grade.RED)
    ]


def test_one_line_per_check_in_the_spec_s_order(make_spec: SpecFactory) -> None:
    spec = make_spec(checks=[{"path": "/a"}, {"path": "/b"}, {"path": "/c", "method": "HEAD"}])
    observation = EndpointObservation(
        checks=(
            observed(name="GET /a", shown="GET h/a"),
            observed(name="GET /b", shown="GET h/b", status=500, reason="Internal Server Error"),
            observed(name="HEAD /c", shown="HEAD h/c", elapsed_s=1.1),
        )
    )

    assert grade_http_endpoint(observation, spec) == [
        Line("- GET h/a 200 in 84ms", Grade.GREEN),
        Line("- GET h/b 500 Internal Server Error in 84ms (expected 200)", Grade.RED),
        Line("- HEAD h/c 200 in 1100ms (slower than 1s)", Grade.YELLOW),
    ]


def test_export_has_answered_checks_only(make_spec: SpecFactory) -> None:
    spec = make_spec(checks=[{"path": "/a"}, {"path": "/b"}, {"path": "/c"}])
    observation = EndpointObservation(
        checks=(
            over_https(10 * DAY_S, name="GET /a", elapsed_s=0.25),
            observed(name="GET /b", elapsed_s=0.5),
            observed(name="GET /c", error="the server did not answer within 1.6s"),
        )
    )

    assert export_http_endpoint(observation, spec) == {
        "zeroprobe_http_endpoint_response_time_seconds": {"GET /a": 0.25, "GET /b": 0.5},
        "zeroprobe_http_endpoint_certificate_expiry_timestamp_seconds": {
            "GET /a": 1_800_000_000.0 + 10 * DAY_S
        },
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "less than an hour"),
        (3599, "less than an hour"),
        (3600, "1 hour"),
        (23.9 * HOUR_S, "23 hours"),
        (DAY_S, "1 day"),
        (2 * DAY_S - 1, "1 day"),
        (400 * DAY_S, "400 days"),
    ],
    ids=["zero", "just-under-an-hour", "an-hour", "23-hours", "a-day", "just-under-2-days", "400"],
)
def test_span_text(seconds: float, text: str) -> None:
    assert span_text(seconds) == text


# measure_check: a reply -> what it tells -------------------------------------------------------


def reply(**fields: Any) -> MeasuredReply:
    values: dict[str, Any] = {
        "status": 200,
        "reason": "OK",
        "headers": {"content-type": "text/plain"},
        "body": b"all ok",
        "elapsed_s": 0.05,
    }
    values.update(fields)
    return MeasuredReply(**values)


def test_measure_searches_the_body_for_both_patterns(make_spec: SpecFactory) -> None:
    check = make_spec(checks=[{"body_matches": r"\bok\b", "body_not_matches": "error"}]).checks[0]

    found = measure_check(reply(), check, shown=SHOWN, https=False, now_s=0)
    neither = measure_check(reply(body=b"an error"), check, shown=SHOWN, https=False, now_s=0)

    assert (found.body_match, found.body_forbidden_match) == (True, False)
    assert (neither.body_match, neither.body_forbidden_match) == (False, True)
    assert (found.status, found.elapsed_s, found.body_bytes) == (200, 0.05, 6)


def test_measure_leaves_the_body_alone_without_patterns(make_spec: SpecFactory) -> None:
    check = make_spec().checks[0]

    result = measure_check(reply(), check, shown=SHOWN, https=False, now_s=0)

    assert (result.body_match, result.body_forbidden_match) == (None, None)


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("text/html; charset=ISO-8859-1", "café".encode("latin-1"), "café"),
        ('text/html; charset="utf-16"', "café".encode("utf-16"), "café"),
        ("text/html", "café".encode(), "café"),
        ("text/html; charset=no-such-charset", "café".encode(), "café"),
        ("text/html; charset=base64", b"caf\xc3\xa9", "café"),
        ("text/html", b"caf\xff", "caf\ufffd"),
    ],
    ids=["latin-1", "utf-16", "utf-8-by-default", "unknown-charset", "not-a-text-codec", "bad"],
)
def test_the_body_is_decoded_in_its_charset(content_type: str, body: bytes, text: str) -> None:
    assert decode_body(reply(headers={"content-type": content_type}, body=body)) == text


def test_measure_quotes_a_redirect_s_location_on_one_short_line(make_spec: SpecFactory) -> None:
    check = make_spec().checks[0]
    location = "https://shop.example/login?next=" + "x" * 200 + "\r\nX-Injected: 1"

    result = measure_check(
        reply(status=301, headers={"location": location}), check, shown=SHOWN, https=False, now_s=0
    )

    assert result.location.startswith("https://shop.example/login?next=xxx")
    assert len(result.location) == 100 and result.location.endswith("…")
    assert "\n" not in result.location


def test_measure_reads_the_certificate_s_expiry(make_spec: SpecFactory, tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path, expires_in=10 * DAY)
    der = x509.load_pem_x509_certificate(certificate.cert_path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    now = dt.datetime.now(dt.UTC)
    check = make_spec().checks[0]

    result = measure_check(
        reply(peer_certificate=der), check, shown=SHOWN, https=True, now_s=now.timestamp()
    )
    garbled = measure_check(
        reply(peer_certificate=b"\x30\x03junk"), check, shown=SHOWN, https=True, now_s=0
    )

    assert result.certificate_not_after_s == certificate.not_after.timestamp()
    assert result.certificate_expires_in_s == pytest.approx(10 * DAY_S, abs=5)
    assert garbled.certificate_not_after_s is None
    assert garbled.certificate_problem == "could not be read (not a valid X.509 certificate)"
