"""The HTTP side of prometheus_query and alertmanager_alerts, against small aiohttp servers.

These servers record what arrives (headers, form, query) and answer what a real server or a
proxy in front of it may answer: credentials required, HTML error pages, huge or slow replies.
Secrets must reach the server and nothing else: not a line, a log record or a metric.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp.resolver
import pytest
from aiohttp import web
from multidict import MultiDict
from pytest_aiohttp import AiohttpServer

from schemas.grading import Grade, Line
from tests.conftest import AlertsSpecFactory, EngineFactory, QuerySpecFactory, run_spec
from tests.servers import free_port
from zeroprobe.engine.store import Result

QUERY_ID = "test.prom.query"
ALERTS_ID = "test.am.alerts"
PROM_VAR = "ZEROPROBE_CONNECTION_PROM"
AM_VAR = "ZEROPROBE_CONNECTION_AM"
PASSWORD = "s3cret-Pa55word"
TOKEN = "tok-9f8e7d6c5b4a"
TOKEN_VAR = "ZP_TEST_PROM_TOKEN"
VECTOR = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {"job": "api"}, "value": [1, "4"]}]},
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorder:
    """What a fake server received, and the base URL it listens on."""

    url: str = ""
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


StartFake = Callable[[Handler], Awaitable[Recorder]]


@pytest.fixture
async def fake(aiohttp_server: AiohttpServer) -> AsyncIterator[StartFake]:
    """Start a server whose every request is recorded, then answered by `handler`."""
    recorders: list[Recorder] = []

    async def start(handler: Handler) -> Recorder:
        recorder = Recorder()

        async def record(request: web.Request) -> web.StreamResponse:
            form = await request.post() if request.method == "POST" else MultiDict[str]()
            recorder.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "headers": dict(request.headers),
                    "query": list(request.query.items()),
                    "form": {k: str(v) for k, v in form.items()},
                }
            )
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        server = await aiohttp_server(app)
        recorder.port = server.port or 0
        recorder.url = f"http://127.0.0.1:{recorder.port}"
        recorders.append(recorder)
        return recorder

    yield start
    for recorder in recorders:
        recorder.release.set()


def answer(body: Any, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status)

    return handler


def assert_never_shown(secret: str, result: Result, metrics: str, logs: str) -> None:
    for where, text in (
        ("document", result.document.decode()),
        ("lines", "\n".join(line.text for line in result.lines)),
        ("metrics", metrics),
        ("logs", logs),
    ):
        assert secret not in text, f"{secret!r} leaked into the {where}: {text}"


async def test_user_and_password_in_the_url_become_basic_auth_and_are_never_shown(
    fake: StartFake,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await fake(answer(VECTOR))
    url = f"http://zpmonitor:{PASSWORD}@127.0.0.1:{server.port}/"

    result, metrics = await run_spec(
        make_engine, make_query_spec(query="sum(up)", line="- {job} {value}"), {PROM_VAR: url}
    )

    assert list(result.lines) == [Line("- api 4", Grade.GREEN)]
    (request,) = server.requests
    expected = base64.b64encode(f"zpmonitor:{PASSWORD}".encode()).decode()
    assert request["headers"]["Authorization"] == f"Basic {expected}"
    assert request["method"] == "POST"
    assert request["path"] == "/api/v1/query"
    assert request["form"]["query"] == "sum(up)"
    assert_never_shown(PASSWORD, result, metrics, caplog.text)
    assert_never_shown(expected, result, metrics, caplog.text)


async def test_the_query_is_posted_as_a_urlencoded_form(
    fake: StartFake, make_engine: EngineFactory, make_query_spec: QuerySpecFactory
) -> None:
    """The form is encoded by http_client, not aiohttp's FormData: the same bytes."""
    query = 'sum(rate(x{code=~"5..", path="/a&b=c"}[5m])) / sum(rate(x[5m])) + 0 * é'
    server = await fake(answer(VECTOR))

    await run_spec(make_engine, make_query_spec(query=query), {PROM_VAR: server.url})

    (request,) = server.requests
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert request["form"] == {"query": query, "timeout": request["form"]["timeout"]}
    assert 0 < float(request["form"]["timeout"]) <= 1.0  # within the spec's 1 s


async def test_credentials_stay_hidden_when_the_server_refuses_or_is_gone(
    fake: StartFake,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    refusing = await fake(answer({"error": "unauthorized"}, status=401))
    closed = free_port()

    unauthorized, metrics_a = await run_spec(
        make_engine,
        make_query_spec(),
        {PROM_VAR: f"http://zpmonitor:{PASSWORD}@127.0.0.1:{refusing.port}"},
    )
    gone, metrics_b = await run_spec(
        make_engine,
        make_query_spec(),
        {PROM_VAR: f"http://zpmonitor:{PASSWORD}@127.0.0.1:{closed}"},
    )

    assert list(unauthorized.lines) == [
        Line(
            "- Prometheus refused the credentials (HTTP 401 Unauthorized): check the connection",
            Grade.RED,
        )
    ]
    assert list(gone.lines) == [
        Line(f"- cannot connect to Prometheus at 127.0.0.1:{closed}: connection refused", Grade.RED)
    ]
    for result, metrics in ((unauthorized, metrics_a), (gone, metrics_b)):
        assert_never_shown(PASSWORD, result, metrics, caplog.text)
        assert_never_shown("zpmonitor:", result, metrics, caplog.text)


async def test_bearer_token_is_sent_and_scrubbed_even_when_the_server_echoes_it(
    fake: StartFake,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def echo(request: web.Request) -> web.StreamResponse:
        # A careless proxy that repeats the credentials it got in its error text.
        said = f"token {request.headers.get('Authorization', '').split()[-1]} is not allowed"
        return web.json_response(
            {"status": "error", "errorType": "bad_data", "error": said}, status=400
        )

    server = await fake(echo)
    spec = make_query_spec(bearer_token_env=TOKEN_VAR)

    result, metrics = await run_spec(make_engine, spec, {PROM_VAR: server.url, TOKEN_VAR: TOKEN})

    (request,) = server.requests
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert list(result.lines) == [
        Line("- Prometheus rejected the query: token *** is not allowed", Grade.RED)
    ]
    assert_never_shown(TOKEN, result, metrics, caplog.text)


async def test_alertmanager_request_carries_filters_flags_and_token(
    fake: StartFake, make_engine: EngineFactory, make_alerts_spec: AlertsSpecFactory
) -> None:
    server = await fake(answer([]))
    spec = make_alerts_spec(
        matchers=['service="payments"', 'severity=~"critical|warning"'],
        include_inhibited=True,
        bearer_token_env=TOKEN_VAR,
    )

    result, _ = await run_spec(make_engine, spec, {AM_VAR: server.url + "/am", TOKEN_VAR: TOKEN})

    assert list(result.lines) == [Line("- no active alerts", Grade.GREEN)]
    (request,) = server.requests
    assert request["method"] == "GET"
    assert request["path"] == "/am/api/v2/alerts"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert sorted(request["query"]) == sorted(
        [
            ("filter", 'service="payments"'),
            ("filter", 'severity=~"critical|warning"'),
            ("active", "true"),
            ("unprocessed", "true"),
            ("silenced", "false"),
            ("inhibited", "true"),
        ]
    )


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        ({}, "- connection 'prom': ZEROPROBE_CONNECTION_PROM is not set"),
        (
            {PROM_VAR: "prometheus:9090"},
            "- connection 'prom': ZEROPROBE_CONNECTION_PROM must be an http:// or https:// URL "
            "with a host, like http://<host>:9090",
        ),
        (
            {PROM_VAR: "http://127.0.0.1:9/?x=1"},
            "- connection 'prom': ZEROPROBE_CONNECTION_PROM must be a base URL without '?' or '#'",
        ),
        (
            {PROM_VAR: "http://127.0.0.1:9"},
            f"- bearer_token_env: {TOKEN_VAR} is not set (it should hold the token for "
            "connection 'prom')",
        ),
        (
            {PROM_VAR: f"http://u:{PASSWORD}@127.0.0.1:9", TOKEN_VAR: TOKEN},
            "- connection 'prom': ZEROPROBE_CONNECTION_PROM has user:password and the spec names "
            "bearer_token_env: use one of them",
        ),
    ],
    ids=["unset", "no-scheme", "query-string", "token-unset", "both-auths"],
)
async def test_unusable_connection_settings_are_red_lines(
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
    environ: dict[str, str],
    line: str,
) -> None:
    spec_fields = {"bearer_token_env": TOKEN_VAR} if "http://" in environ.get(PROM_VAR, "") else {}

    result, _ = await run_spec(make_engine, make_query_spec(**spec_fields), environ)

    assert list(result.lines) == [Line(line, Grade.RED)]
    assert result.outcome == "error"


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_a_huge_reply_is_not_read(
    fake: StartFake, make_engine: EngineFactory, make_query_spec: QuerySpecFactory, chunked: bool
) -> None:
    piece = b" " * (1024 * 1024)

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = 11 * len(piece)
        await response.prepare(request)
        try:
            for _ in range(11):
                await response.write(piece)
        except ConnectionError:
            pass  # the client stopped reading: that is the point
        return response

    server = await fake(huge)

    result, _ = await run_spec(make_engine, make_query_spec(), {PROM_VAR: server.url})

    assert list(result.lines) == [
        Line(
            "- reply of Prometheus larger than 4 MiB: not read (narrow the query or the matchers)",
            Grade.RED,
        )
    ]


async def test_a_slow_server_is_cut_off_within_the_spec_timeout(
    fake: StartFake, make_engine: EngineFactory, make_query_spec: QuerySpecFactory
) -> None:
    holder: list[Recorder] = []

    async def slow(request: web.Request) -> web.StreamResponse:
        await holder[0].release.wait()
        return web.json_response(VECTOR)

    server = await fake(slow)
    holder.append(server)
    spec = make_query_spec(timeout="1s")

    started = time.perf_counter()
    result, _ = await run_spec(make_engine, spec, {PROM_VAR: server.url})
    took_s = time.perf_counter() - started
    server.release.set()

    (line,) = result.lines
    assert line.grade is Grade.RED
    assert line.text.startswith(f"- Prometheus at 127.0.0.1:{server.port} did not answer within ")
    assert result.outcome == "error"  # our own request timeout, not the runner's
    assert took_s < spec.timeout_s


@pytest.mark.parametrize(
    ("reply", "line"),
    [
        (
            (502, "<html><body>\n<h1>502 Bad Gateway</h1>\n</body></html>", "text/html"),
            "- Prometheus answered HTTP 502 Bad Gateway: 502 Bad Gateway",
        ),
        (
            (200, "<html>login page</html>", "text/html"),
            "- unreadable reply from Prometheus: not a JSON object: login page",
        ),
        (
            (
                503,
                '{"status":"error","errorType":"timeout","error":"query timed out in expression '
                'evaluation"}',
                "application/json",
            ),
            "- Prometheus is unavailable or timed out: query timed out in expression evaluation "
            "(timeout)",
        ),
    ],
    ids=["proxy-502", "html-200", "timeout-503"],
)
async def test_replies_that_are_not_results(
    fake: StartFake,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
    reply: tuple[int, str, str],
    line: str,
) -> None:
    status, body, content_type = reply

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, content_type=content_type)

    server = await fake(handler)

    result, _ = await run_spec(make_engine, make_query_spec(), {PROM_VAR: server.url})

    assert list(result.lines) == [Line(line, Grade.RED)]


async def test_an_unresolvable_host_name_is_a_plain_line(
    monkeypatch: pytest.MonkeyPatch, make_engine: EngineFactory, make_query_spec: QuerySpecFactory
) -> None:
    # No DNS lookup leaves the machine: aiohttp resolves through the event loop, whose
    # getaddrinfo fails the name itself.
    assert aiohttp.resolver.DefaultResolver is aiohttp.resolver.ThreadedResolver
    asked: list[str] = []

    async def no_such_host(host: str, *args: object, **kwargs: object) -> Any:
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_such_host)
    environ = {PROM_VAR: "http://prometheus.zeroprobe-test:9090"}

    result, _ = await run_spec(make_engine, make_query_spec(), environ)

    assert list(result.lines) == [
        Line(
            "- cannot connect to Prometheus at prometheus.zeroprobe-test:9090: "
            "host name not resolvable",
            Grade.RED,
        )
    ]
    assert asked == ["prometheus.zeroprobe-test"]
