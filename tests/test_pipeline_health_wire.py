"""pipeline_health through the engine against local servers that answer like each provider.

Requests go where each provider's API documentation says, with its headers; errors are RED
plain lines; the token never appears in a line, the document, a metric or a log record.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from schemas.context_spec import PipelineHealthSpec
from schemas.grading import Grade, Line
from tests.conftest import EngineFactory, run_spec, spec_factory
from tests.pipeline_fakes import (
    GITHUB_JOBS,
    GITHUB_LOG,
    GITHUB_RUNS,
    GITLAB_JOBS,
    GITLAB_PIPELINES,
    GITLAB_TRACE,
    JENKINS_BUILDS,
    FakeCI,
    github_routes,
    gitlab_routes,
    json_reply,
    log_text,
    recorded,
    text_reply,
)
from tests.servers import free_port
from tests.test_http_probes_client import assert_never_shown
from zeroprobe.config.loader import load_contexts
from zeroprobe.engine.core import Engine

TOKEN = "ghp_Zq81tokenNeverShown0042"
TOKEN_VAR = "ZP_TEST_CI_TOKEN"
URL_VAR = "ZEROPROBE_CONNECTION_CI"

StartFake = Callable[[FakeCI], Awaitable[str]]


@pytest.fixture
async def serve(aiohttp_server: AiohttpServer) -> AsyncIterator[StartFake]:
    """Serve a FakeCI on 127.0.0.1; its base URL."""

    async def start(fake: FakeCI) -> str:
        server = await aiohttp_server(fake.app())
        return f"http://127.0.0.1:{server.port}"

    yield start


def make_spec(provider: str = "github", **fields: Any) -> PipelineHealthSpec:
    targets: dict[str, dict[str, Any]] = {
        "github": {"repository": "acme/shop", "workflow": "ci.yml"},
        "gitlab": {"project": "shop/api"},
        "jenkins": {"job": "shop/main"},
    }
    factory = spec_factory(
        PipelineHealthSpec,
        {
            "service_id": f"test.ci.{provider}",
            "kind": "pipeline_health",
            "provider": provider,
            "connection": "ci",
            "token_env": TOKEN_VAR,
            "interval": "4s",
            "timeout": "2s",
            **targets[provider],
        },
    )
    return factory(**fields)


def env(url: str, token: str = TOKEN) -> dict[str, str]:
    return {URL_VAR: url, TOKEN_VAR: token}


async def test_github_failed_run_with_hint_from_the_redirected_job_log(
    serve: StartFake, make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeCI(github_routes())
    url = await serve(fake)

    result, metrics = await run_spec(make_engine, make_spec(), env(url))

    assert list(result.lines) == [
        Line(
            "- main: run #1234 failed 12m ago (3 in a row, last success 5h ago) "
            "https://github.com/acme/shop/actions/runs/30433642 — hint: out of memory (exit 137)",
            Grade.RED,
        )
    ]
    assert fake.paths() == [GITHUB_RUNS, GITHUB_JOBS, GITHUB_LOG, "/blob/job-399444496.log"]
    runs = fake.requests[0]
    assert runs["query"] == [("branch", "main"), ("per_page", "30")]
    assert runs["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert runs["headers"]["Accept"] == "application/vnd.github+json"
    assert runs["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
    assert_never_shown(TOKEN, result, metrics, caplog.text)


async def test_github_log_redirect_to_another_host_goes_without_the_token(
    serve: StartFake, make_engine: EngineFactory
) -> None:
    storage = FakeCI({"/blob/log": text_reply("npm ERR! code ENOENT\n")})
    storage_url = await serve(storage)
    fake = FakeCI(github_routes(log_location=f"{storage_url}/blob/log"))
    url = await serve(fake)

    result, _ = await run_spec(make_engine, make_spec(), env(url))

    assert result.lines[0].text.endswith("— hint: file not found (ENOENT)")
    (log_request,) = storage.requests
    assert "Authorization" not in log_request["headers"]
    assert all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in fake.requests)


async def test_github_log_tail_is_at_most_64_kib(
    serve: StartFake, make_engine: EngineFactory
) -> None:
    # The cause is at the head of a long log: out of reach of the tail, so no hint.
    head = "No space left on device\n"
    routes = github_routes()
    routes["/blob/job-399444496.log"] = text_reply(head + "x" * (64 * 1024) + "\ndone\n")
    url = await serve(FakeCI(routes))

    result, _ = await run_spec(make_engine, make_spec(), env(url))

    assert result.grade is Grade.RED
    assert "hint" not in result.lines[0].text


async def test_gitlab_failed_pipeline_with_trace_hint(
    serve: StartFake, make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeCI(gitlab_routes())
    url = await serve(fake)

    result, metrics = await run_spec(make_engine, make_spec("gitlab"), env(url))

    # Newest completed: 2086 failed (manual, skipped and canceled pipelines are not failures).
    assert list(result.lines) == [
        Line(
            "- main: run #2086 failed 10m ago (1 in a row, last success 2h ago) "
            "https://gitlab.example.com/shop/api/-/pipelines/2086"
            " — hint: disk full (No space left on device)",
            Grade.YELLOW,
        )
    ]
    assert fake.paths() == [GITLAB_PIPELINES, GITLAB_JOBS, GITLAB_TRACE]
    assert fake.requests[0]["query"] == [("ref", "main"), ("per_page", "30")]
    assert fake.requests[1]["query"] == [("scope[]", "failed")]
    assert all(r["headers"]["PRIVATE-TOKEN"] == TOKEN for r in fake.requests)
    assert all("Authorization" not in r["headers"] for r in fake.requests)
    assert_never_shown(TOKEN, result, metrics, caplog.text)


async def test_jenkins_green_with_a_stuck_build_and_basic_auth(
    serve: StartFake, make_engine: EngineFactory
) -> None:
    fake = FakeCI({JENKINS_BUILDS: json_reply(recorded("jenkins-builds.json"))})
    url = await serve(fake)

    result, _ = await run_spec(
        make_engine, make_spec("jenkins", runs=5), env(url, token="zp-bot:11aa22bb33")
    )

    # #58 has been building for 2h; the successful builds took 10m, 9m and 10m.
    assert list(result.lines) == [
        Line(
            "- shop/main: run #57 succeeded 2h10m ago "
            "https://jenkins.example.com/job/shop/job/main/57/",
            Grade.GREEN,
        ),
        Line(
            "- shop/main: run #58 looks stuck: running for 2h, median successful run 10m "
            "https://jenkins.example.com/job/shop/job/main/58/",
            Grade.YELLOW,
        ),
    ]
    assert result.grade is Grade.YELLOW
    (request,) = fake.requests
    assert request["query"] == [
        ("tree", "builds[number,result,building,timestamp,duration,url]{0,15}")
    ]
    expected = base64.b64encode(b"zp-bot:11aa22bb33").decode()
    assert request["headers"]["Authorization"] == f"Basic {expected}"


async def test_jenkins_failed_build_reads_console_text_and_custom_hints(
    serve: StartFake, make_engine: EngineFactory
) -> None:
    now_ms = time.time_ns() // 1_000_000
    builds = {
        "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
        "builds": [
            {
                "number": 60,
                "result": "FAILURE",
                "building": False,
                "timestamp": now_ms - 20 * 60_000,
                "duration": 5 * 60_000,
                "url": "https://jenkins.example.com/job/shop/job/main/60/",
            },
            {
                "number": 59,
                "result": "SUCCESS",
                "building": False,
                "timestamp": now_ms - 65 * 60_000,
                "duration": 5 * 60_000,
                "url": "https://jenkins.example.com/job/shop/job/main/59/",
            },
        ],
    }
    console = log_text("jenkins-console.txt")
    fake = FakeCI(
        {
            JENKINS_BUILDS: json_reply(builds),
            "/job/shop/job/main/60/consoleText": text_reply(console),
        }
    )
    url = await serve(fake)

    builtin, _ = await run_spec(make_engine, make_spec("jenkins"), env(url, "u:t"))
    custom, _ = await run_spec(
        make_engine,
        make_spec("jenkins", hints=[{"pattern": r"npm ERR! code E\w+", "hint": "npm registry"}]),
        env(url, "u:t"),
    )

    assert builtin.lines[0] == Line(
        "- shop/main: run #60 failed 15m ago (1 in a row, last success 1h ago) "
        "https://jenkins.example.com/job/shop/job/main/60/ — hint: connection timeout",
        Grade.YELLOW,
    )
    assert custom.lines[0].text.endswith("— hint: npm registry")


def echo_token(status: int, headers: dict[str, str] | None = None) -> Callable[..., Any]:
    async def handler(request: web.Request) -> web.StreamResponse:
        said = request.headers.get("Authorization", request.headers.get("PRIVATE-TOKEN", ""))
        return web.json_response(
            {"message": f"Bad credentials: {said}"}, status=status, headers=headers
        )

    return handler


@pytest.mark.parametrize(
    ("provider", "path", "status", "line"),
    [
        (
            "github",
            GITHUB_RUNS,
            401,
            f"- GitHub token rejected (HTTP 401 Unauthorized): check token_env {TOKEN_VAR} "
            "and the token's permissions",
        ),
        (
            "gitlab",
            GITLAB_PIPELINES,
            403,
            f"- GitLab token rejected (HTTP 403 Forbidden): check token_env {TOKEN_VAR} "
            "and the token's permissions",
        ),
        (
            "github",
            GITHUB_RUNS,
            404,
            "- GitHub: repository acme/shop or workflow ci.yml not found (HTTP 404 Not Found)",
        ),
        (
            "gitlab",
            GITLAB_PIPELINES,
            404,
            "- GitLab: project shop/api not found (HTTP 404 Not Found)",
        ),
        (
            "jenkins",
            JENKINS_BUILDS,
            404,
            "- Jenkins: job shop/main not found (HTTP 404 Not Found)",
        ),
        (
            "jenkins",
            JENKINS_BUILDS,
            503,
            "- Jenkins answered HTTP 503 Service Unavailable",
        ),
    ],
    ids=["github-401", "gitlab-403", "github-404", "gitlab-404", "jenkins-404", "jenkins-503"],
)
async def test_provider_errors_are_red_lines_without_the_token(
    *,
    serve: StartFake,
    make_engine: EngineFactory,
    caplog: pytest.LogCaptureFixture,
    provider: str,
    path: str,
    status: int,
    line: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = await serve(FakeCI({path: echo_token(status)}))
    token = "u:" + TOKEN if provider == "jenkins" else TOKEN

    result, metrics = await run_spec(make_engine, make_spec(provider), env(url, token))

    assert list(result.lines) == [Line(line, Grade.RED)]
    assert_never_shown(TOKEN, result, metrics, caplog.text)


async def test_a_rate_limit_keeps_the_last_result_marked_stale_until_the_reset(
    serve: StartFake, make_engine: EngineFactory
) -> None:
    fake = FakeCI(github_routes())
    url = await serve(fake)
    spec = make_spec()
    engine: Engine = make_engine([spec], env(url))
    try:
        first = await engine.run_once(spec.service_id)
        reset_s = int(time.time()) + 600
        fake.routes[GITHUB_RUNS] = echo_token(
            403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset_s)}
        )
        limited = await engine.run_once(spec.service_id)
        asked = len(fake.requests)
        again = await engine.run_once(spec.service_id)
    finally:
        await engine.stop()

    retry = time.strftime("%H:%M:%S UTC", time.gmtime(reset_s))
    stale = f" [stale: GitHub rate limit, retrying after {retry}]"
    assert first.grade is Grade.RED
    assert [line.text for line in limited.lines] == [first.lines[0].text + stale]
    assert limited.grade is Grade.RED
    assert again.lines == limited.lines
    assert len(fake.requests) == asked, "asked again before the reset"
    assert TOKEN not in limited.document.decode()


@pytest.mark.parametrize(
    ("status", "headers"),
    [(429, {"Retry-After": "30"}), (403, {"X-RateLimit-Remaining": "0"})],
    ids=["429-retry-after", "403-remaining-0"],
)
async def test_a_rate_limit_without_an_earlier_result_is_red(
    serve: StartFake, make_engine: EngineFactory, status: int, headers: dict[str, str]
) -> None:
    url = await serve(FakeCI({GITLAB_PIPELINES: echo_token(status, headers)}))
    result, _ = await run_spec(make_engine, make_spec("gitlab"), env(url))
    (line,) = result.lines
    assert line.grade is Grade.RED
    assert line.text.startswith(
        "- GitLab rate limit reached and no earlier result: retrying after "
    )
    assert TOKEN not in line.text


async def test_connection_refused_and_timeouts_are_red_lines(
    serve: StartFake, make_engine: EngineFactory
) -> None:
    port = free_port()
    refused, _ = await run_spec(make_engine, make_spec(), env(f"http://127.0.0.1:{port}"))
    assert list(refused.lines) == [
        Line(f"- cannot connect to GitHub at 127.0.0.1:{port}: connection refused", Grade.RED)
    ]

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.json_response({})

    url = await serve(FakeCI({GITHUB_RUNS: slow}))
    started = time.monotonic()
    slow_result, _ = await run_spec(make_engine, make_spec(timeout="1s"), env(url))
    assert time.monotonic() - started < 2
    (line,) = slow_result.lines
    assert line.grade is Grade.RED
    assert line.text.startswith(f"- GitHub at {url.removeprefix('http://')} did not answer")


async def test_unset_token_and_connection_are_red_lines(
    serve: StartFake, make_engine: EngineFactory
) -> None:
    unset, _ = await run_spec(make_engine, make_spec(), {URL_VAR: "http://127.0.0.1:9"})
    assert list(unset.lines) == [
        Line(
            f"- token_env: {TOKEN_VAR} is not set (it should hold the GitHub token for "
            "connection 'ci')",
            Grade.RED,
        )
    ]
    no_url, _ = await run_spec(make_engine, make_spec(), {TOKEN_VAR: TOKEN})
    assert list(no_url.lines) == [Line(f"- connection 'ci': {URL_VAR} is not set", Grade.RED)]


async def test_a_log_out_of_reach_only_costs_the_hint(
    serve: StartFake, make_engine: EngineFactory
) -> None:
    async def slow_log(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(text="exit code 137")

    broken = github_routes()
    broken[GITHUB_JOBS] = json_reply({"message": "Server Error"}, status=500)
    slow = github_routes()
    slow["/blob/job-399444496.log"] = slow_log
    expected = Line(
        "- main: run #1234 failed 12m ago (3 in a row, last success 5h ago) "
        "https://github.com/acme/shop/actions/runs/30433642",
        Grade.RED,
    )
    for routes in (broken, slow):
        url = await serve(FakeCI(routes))
        started = time.monotonic()
        result, _ = await run_spec(make_engine, make_spec(timeout="1s"), env(url))
        assert time.monotonic() - started < 1.5
        assert list(result.lines) == [expected]


def test_an_unset_token_variable_is_a_load_warning(tmp_path: Path) -> None:
    spec_file = tmp_path / "ci.yaml"
    spec_file.write_text(
        "service_id: ci.main\nkind: pipeline_health\nprovider: gitlab\nconnection: gitlab\n"
        "token_env: GITLAB_TOKEN\nproject: 42\n",
        encoding="utf-8",
    )
    report = load_contexts(tmp_path, {"ZEROPROBE_CONNECTION_GITLAB": "https://gitlab.example"})
    assert report.ok
    assert [str(w) for w in report.warnings] == [
        f"{spec_file}:5: token_env: warning: GITLAB_TOKEN is not set: the probe will report "
        "RED until it is"
    ]
