"""http_endpoint against real aiohttp servers on 127.0.0.1, over plain HTTP and over TLS with
certificates the test makes: status, body, response time, certificate expiry, credentials."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import ServeApp
from endpoint_helpers import (
    CONNECTION_VAR,
    DAY,
    LOCALHOST,
    NOT_PLAIN,
    SpecFactory,
    make_certificate,
    run_once,
    texts,
)
from zeroprobe_http.spec import MAX_CHECKS

from tests.servers import free_port
from zeroprobe.plugin import Grade, Line

PASSWORD = "s3cret-Pa55word"
TOKEN = "tok-9f8e7d6c5b4a3210"
TOKEN_VAR = "ZP_TEST_SHOP_TOKEN"


class Shop:
    """A small web shop: what each request brought, and the answers of a few paths."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": list(request.query.items()),
                "headers": dict(request.headers),
            }
        )
        if request.path == "/health":
            return web.json_response({"status": "ok"})
        if request.path == "/maintenance":
            return web.Response(text="<h1>Down for maintenance</h1>", content_type="text/html")
        if request.path.startswith("/status/"):
            return web.Response(status=int(request.path.rsplit("/", 1)[1]), text="no")
        if request.path == "/slow":
            await asyncio.sleep(float(request.query["s"]))
            return web.Response(text="ok, eventually")
        if request.path == "/old":
            raise web.HTTPFound("/new")
        if request.path == "/big":
            return web.Response(body=b"x" * 1_000_000 + b"END")
        return web.Response(status=404, text="not here")


@pytest.fixture
def shop() -> Shop:
    return Shop()


def address(url: str) -> str:
    return url.split("://", 1)[1]


async def test_a_healthy_endpoint_is_one_green_line_per_check(
    make_spec: SpecFactory, serve_app: ServeApp, shop: Shop
) -> None:
    url = await serve_app(shop.app())
    spec = make_spec(
        checks=[
            {"path": "/health", "body_matches": r'"status":\s*"ok"'},
            {"path": "/", "method": "head", "expect_status": ["4xx"]},
            {"path": "/status/204?a=1&b=two%20words", "method": "POST", "expect_status": [204]},
        ]
    )

    result, metrics = await run_once(spec, {CONNECTION_VAR: url})

    host = address(url)
    assert result.grade is Grade.GREEN, result.lines
    assert [line.grade for line in result.lines] == [Grade.GREEN] * 3
    assert re.fullmatch(rf"- GET {host}/health 200 in \d+ms", result.lines[0].text)
    assert re.fullmatch(rf"- HEAD {host}/ 404 in \d+ms", result.lines[1].text)
    third = rf"- POST {host}/status/204\?a=1&b=two%20words 204 in \d+ms"
    assert re.fullmatch(third, texts(result)[2])
    seen = sorted((r["method"], r["path"], tuple(r["query"])) for r in shop.requests)
    assert seen == [
        ("GET", "/health", ()),
        ("HEAD", "/", ()),
        ("POST", "/status/204", (("a", "1"), ("b", "two words"))),
    ]
    assert all(r["headers"].get("Connection") == "close" for r in shop.requests)
    assert 'zeroprobe_http_endpoint_response_time_seconds{check="GET /health",' in metrics
    assert "zeroprobe_http_endpoint_certificate_expiry_timestamp_seconds{" not in metrics


@pytest.mark.parametrize(
    ("check", "expected", "grade"),
    [
        (
            {"path": "/status/503"},
            r"- GET {host}/status/503 503 Service Unavailable in \d+ms \(expected 200\)",
            Grade.RED,
        ),
        (
            {"path": "/old", "expect_status": [200, 204]},
            r"- GET {host}/old 302 Found in \d+ms \(expected 200 or 204; redirects to /new\)",
            Grade.RED,
        ),
        (
            {"path": "/health", "body_matches": "healthy"},
            r"- GET {host}/health 200 in \d+ms; body does not match 'healthy'",
            Grade.RED,
        ),
        (
            {"path": "/maintenance", "body_not_matches": "(?i)maintenance"},
            r"- GET {host}/maintenance 200 in \d+ms; body matches '\(\?i\)maintenance', which "
            r"it must not",
            Grade.RED,
        ),
        (
            {"path": "/big", "body_matches": "END$"},
            r"- GET {host}/big 200 in \d+ms",
            Grade.GREEN,
        ),
    ],
    ids=["unexpected-status", "redirect-not-followed", "body-no-match", "body-forbidden", "1-mb"],
)
async def test_status_and_body(  # noqa: PLR0917 - pytest passes the parameters by name
    make_spec: SpecFactory,
    serve_app: ServeApp,
    shop: Shop,
    check: dict[str, Any],
    expected: str,
    grade: Grade,
) -> None:
    url = await serve_app(shop.app())

    result, _ = await run_once(make_spec(checks=[check]), {CONNECTION_VAR: url})

    (line,) = result.lines
    assert re.fullmatch(expected.format(host=re.escape(address(url))), line.text), line.text
    assert line.grade is grade
    assert [r["path"] for r in shop.requests] == [check["path"]], "no redirect was followed"


@pytest.mark.parametrize(
    ("delay_s", "bands", "slower_than", "grade"),
    [
        (0.3, {"yellow": "100ms", "red": "1.5s"}, "100ms", Grade.YELLOW),
        (0.4, {"yellow": "100ms", "red": "300ms"}, "300ms", Grade.RED),
    ],
    ids=["yellow", "red"],
)
async def test_a_slow_reply_is_graded_by_its_response_time(  # noqa: PLR0917 - pytest passes the parameters by name
    make_spec: SpecFactory,
    serve_app: ServeApp,
    shop: Shop,
    delay_s: float,
    bands: dict[str, str],
    slower_than: str,
    grade: Grade,
) -> None:
    url = await serve_app(shop.app())
    spec = make_spec(checks=[{"path": f"/slow?s={delay_s}", "response_time": bands}])

    result, metrics = await run_once(spec, {CONNECTION_VAR: url})

    (line,) = result.lines
    found = re.fullmatch(
        rf"- GET {re.escape(address(url))}/slow\?s={delay_s} 200 in (\d+)ms "
        rf"\(slower than {slower_than}\)",
        line.text,
    )
    assert found, line.text
    assert int(found[1]) >= delay_s * 1000
    assert line.grade is grade
    series = re.search(r'response_time_seconds\{check="GET /slow[^"]*",[^}]*\} (\S+)', metrics)
    assert series and float(series[1]) >= delay_s


async def test_every_check_is_sent_at_once_without_waiting_for_a_connection(
    make_spec: SpecFactory, serve_app: ServeApp, shop: Shop
) -> None:
    url = await serve_app(shop.app())
    # Each reply takes 0.4s: one after the other, 16 of them would take 6.4s, beyond the
    # timeout; a check queued behind another for a connection would take 0.8s.
    checks = [{"path": f"/slow?s=0.4&n={n}"} for n in range(MAX_CHECKS)]
    spec = make_spec(checks=checks)

    result, _ = await run_once(spec, {CONNECTION_VAR: url})

    assert result.grade is Grade.GREEN, result.lines
    times_ms = [int(re.findall(r" in (\d+)ms", text)[0]) for text in texts(result)]
    assert len(times_ms) == MAX_CHECKS
    assert all(400 <= ms < 800 for ms in times_ms), times_ms
    assert [t.split(" 200 in ")[0].rsplit("n=", 1)[1] for t in texts(result)] == [
        str(n) for n in range(MAX_CHECKS)
    ], "one line per check, in the spec's order"


async def test_a_reply_slower_than_the_timeout_is_a_red_line_in_time(
    make_spec: SpecFactory, serve_app: ServeApp, shop: Shop
) -> None:
    url = await serve_app(shop.app())
    spec = make_spec(interval="5s", timeout="1s", checks=[{"path": "/slow?s=3"}])

    result, _ = await run_once(spec, {CONNECTION_VAR: url})

    assert texts(result) == [
        f"- GET {address(url)}/slow?s=3: the server did not answer within 800ms"
    ]
    assert result.grade is Grade.RED
    assert result.duration_s < 1.0


async def test_basic_auth_from_the_connection_never_shows(
    make_spec: SpecFactory, serve_app: ServeApp, shop: Shop
) -> None:
    url = await serve_app(shop.app())
    connection = url.replace("://", f"://monitor:{PASSWORD}@")
    spec = make_spec(checks=[{"path": "/health"}, {"path": "/status/401"}])

    result, metrics = await run_once(spec, {CONNECTION_VAR: connection})

    expected = "Basic " + base64.b64encode(f"monitor:{PASSWORD}".encode()).decode()
    assert [r["headers"].get("Authorization") for r in shop.requests] == [expected, expected]
    host = address(url)
    assert texts(result)[0].startswith(f"- GET {host}/health 200 in ")
    assert texts(result)[1].startswith(f"- GET {host}/status/401 401 Unauthorized in ")
    for text in [*texts(result), metrics]:
        assert PASSWORD not in text
        assert "monitor:" not in text
        assert expected.split()[1] not in text


async def test_a_bearer_token_is_sent_and_never_shows(
    make_spec: SpecFactory, serve_app: ServeApp, shop: Shop
) -> None:
    url = await serve_app(shop.app())
    spec = make_spec(bearer_token_env=TOKEN_VAR, checks=[{"path": "/health"}])

    result, metrics = await run_once(spec, {CONNECTION_VAR: url, TOKEN_VAR: TOKEN})

    assert shop.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert result.grade is Grade.GREEN
    assert TOKEN not in " ".join(texts(result)) + metrics


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        ({}, "- connection 'shop': ZEROPROBE_CONNECTION_SHOP is not set"),
        (
            {CONNECTION_VAR: "ftp://127.0.0.1:21"},
            "- connection 'shop': ZEROPROBE_CONNECTION_SHOP must be an http:// or https:// URL "
            "with a host, like http://<host>:9090",
        ),
        (
            {CONNECTION_VAR: f"http://u:{PASSWORD}@127.0.0.1:1", TOKEN_VAR: TOKEN},
            "- connection 'shop': ZEROPROBE_CONNECTION_SHOP has user:password and the spec "
            "names bearer_token_env: use one of them",
        ),
    ],
    ids=["unset", "not-http", "password-and-token"],
)
async def test_an_unusable_connection_is_one_red_line(
    make_spec: SpecFactory, environ: dict[str, str], line: str
) -> None:
    spec = make_spec(bearer_token_env=TOKEN_VAR, checks=[{"path": "/a"}, {"path": "/b"}])

    result, _ = await run_once(spec, environ)

    assert list(result.lines) == [Line(line, Grade.RED)]


async def test_a_refused_connection_is_a_red_line_per_check(make_spec: SpecFactory) -> None:
    port = free_port()  # nothing listens there
    spec = make_spec(checks=[{"path": "/health"}, {"path": "/"}])

    result, _ = await run_once(spec, {CONNECTION_VAR: f"http://{LOCALHOST}:{port}"})

    assert list(result.lines) == [
        Line(
            f"- GET {LOCALHOST}:{port}{path}: cannot connect to the server: connection refused",
            Grade.RED,
        )
        for path in ("/health", "/")
    ]
    assert not any(NOT_PLAIN.search(text) for text in texts(result))


# HTTPS ------------------------------------------------------------------------------------------


def https_spec(make_spec: SpecFactory, **fields: Any) -> Any:
    return make_spec(checks=[{"path": "/health", "body_matches": "ok"}], **fields)


@pytest.mark.parametrize(
    ("expires_in", "part", "grade"),
    [
        (60 * DAY + dt.timedelta(hours=1), "certificate expires in 60 days", Grade.GREEN),
        (10 * DAY + dt.timedelta(hours=1), "certificate expires in 10 days", Grade.YELLOW),
        (3 * DAY + dt.timedelta(hours=1), "certificate expires in 3 days", Grade.RED),
    ],
    ids=["60-days-green", "10-days-yellow", "3-days-red"],
)
async def test_the_certificate_s_days_left_grade_the_line(  # noqa: PLR0917 - pytest passes the parameters by name
    make_spec: SpecFactory,
    serve_app: ServeApp,
    shop: Shop,
    tmp_path: Path,
    expires_in: dt.timedelta,
    part: str,
    grade: Grade,
) -> None:
    certificate = make_certificate(tmp_path, expires_in=expires_in)
    url = await serve_app(shop.app(), tls=certificate.server_context())
    spec = https_spec(make_spec, tls_ca_file=str(certificate.cert_path))

    result, metrics = await run_once(spec, {CONNECTION_VAR: url})

    (line,) = result.lines
    assert re.fullmatch(
        rf"- GET {re.escape(address(url))}/health 200 in \d+ms; {part}", line.text
    ), line.text
    assert line.grade is grade
    expiry = re.search(
        r'certificate_expiry_timestamp_seconds\{check="GET /health",[^}]*\} (\S+)', metrics
    )
    assert expiry and float(expiry[1]) == certificate.not_after.timestamp()


async def test_an_expired_certificate_is_red_verified_or_not(
    make_spec: SpecFactory, serve_app: ServeApp, shop: Shop, tmp_path: Path
) -> None:
    certificate = make_certificate(tmp_path, expires_in=-(3 * DAY + dt.timedelta(hours=1)))
    url = await serve_app(shop.app(), tls=certificate.server_context())
    host = address(url)

    verified, _ = await run_once(
        https_spec(make_spec, tls_ca_file=str(certificate.cert_path)), {CONNECTION_VAR: url}
    )
    unverified, _ = await run_once(https_spec(make_spec, tls_verify=False), {CONNECTION_VAR: url})

    assert list(verified.lines) == [
        Line(
            f"- GET {host}/health: TLS handshake with the server failed: certificate verify "
            "failed: certificate has expired",
            Grade.RED,
        )
    ]
    (line,) = unverified.lines
    assert re.fullmatch(
        rf"- GET {re.escape(host)}/health 200 in \d+ms; certificate expired 3 days ago "
        r"\(not verified\)",
        line.text,
    ), line.text
    assert line.grade is Grade.RED


async def test_an_untrusted_certificate_is_refused_unless_verification_is_off(
    make_spec: SpecFactory, serve_app: ServeApp, shop: Shop, tmp_path: Path
) -> None:
    certificate = make_certificate(tmp_path / "server", expires_in=60 * DAY)
    other_ca = make_certificate(tmp_path / "other", expires_in=60 * DAY, name="other-ca")
    url = await serve_app(shop.app(), tls=certificate.server_context())
    host = address(url)

    by_system_cas, _ = await run_once(https_spec(make_spec), {CONNECTION_VAR: url})
    by_other_ca, _ = await run_once(
        https_spec(make_spec, tls_ca_file=str(other_ca.cert_path)), {CONNECTION_VAR: url}
    )
    not_verified, _ = await run_once(https_spec(make_spec, tls_verify=False), {CONNECTION_VAR: url})

    refused = Line(
        f"- GET {host}/health: TLS handshake with the server failed: certificate verify failed: "
        "self-signed certificate",
        Grade.RED,
    )
    assert list(by_system_cas.lines) == [refused]
    assert list(by_other_ca.lines) == [refused]
    assert re.fullmatch(
        rf"- GET {re.escape(host)}/health 200 in \d+ms; certificate expires in 59 days "
        r"\(not verified\)",
        not_verified.lines[0].text,
    ), not_verified.lines
    assert not_verified.grade is Grade.GREEN
    assert len(shop.requests) == 1, "only the unverified run got through the handshake"


async def test_the_certificate_is_read_whatever_the_size_of_the_reply(
    make_spec: SpecFactory, serve_app: ServeApp, shop: Shop, tmp_path: Path
) -> None:
    # A short reply arrives with its headers and frees the connection at once; a long one
    # keeps it busy while the body is read: the certificate is read in both.
    certificate = make_certificate(tmp_path, expires_in=30 * DAY + dt.timedelta(hours=1))
    url = await serve_app(shop.app(), tls=certificate.server_context())
    spec = make_spec(
        checks=[{"path": "/status/204", "expect_status": [204]}, {"path": "/big"}],
        tls_ca_file=str(certificate.cert_path),
    )

    result, _ = await run_once(spec, {CONNECTION_VAR: url})

    assert [t.split("; ", 1)[1] for t in texts(result)] == [
        "certificate expires in 30 days",
        "certificate expires in 30 days",
    ]
    assert result.grade is Grade.GREEN


@pytest.mark.parametrize(
    ("ca_file", "reason"),
    [
        ("missing.pem", "no such file"),
        ("folder", "a directory, not a PEM file"),
        ("not-pem.pem", "no PEM certificate in it (expected a CA bundle)"),
    ],
    ids=["missing", "a-directory", "not-pem"],
)
async def test_an_unusable_ca_file_is_one_red_line(  # noqa: PLR0917 - pytest passes the parameters by name
    make_spec: SpecFactory,
    serve_app: ServeApp,
    shop: Shop,
    tmp_path: Path,
    ca_file: str,
    reason: str,
) -> None:
    certificate = make_certificate(tmp_path / "tls", expires_in=60 * DAY)
    (tmp_path / "folder").mkdir()
    (tmp_path / "not-pem.pem").write_text("not a certificate\n", encoding="utf-8")
    url = await serve_app(shop.app(), tls=certificate.server_context())
    path = tmp_path / ca_file
    spec = make_spec(checks=[{"path": "/a"}, {"path": "/b"}], tls_ca_file=str(path))

    result, _ = await run_once(spec, {CONNECTION_VAR: url})

    assert list(result.lines) == [Line(f"- tls_ca_file {path}: {reason}", Grade.RED)]
    assert shop.requests == []
