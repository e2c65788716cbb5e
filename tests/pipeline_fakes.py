"""Local servers that answer like GitHub, GitLab and Jenkins, from the recorded replies.

The recorded replies (tests/fixtures/pipeline/) are shaped as each provider's API documentation
shows them, with times around 2026-11-22T03:00:00Z; `recorded` moves every time by the same
offset so that this instant becomes "now", keeping the ages the tests expect.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).parent / "fixtures" / "pipeline"
#: The instant the recorded replies were recorded at (what `recorded` maps to now).
RECORDED_AT_MS = 1_795_316_400_000  # 2026-11-22T03:00:00Z
TIME_FIELDS = frozenset(
    {"created_at", "updated_at", "run_started_at", "started_at", "completed_at", "finished_at"}
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def recorded(name: str, now_ms: int | None = None) -> Any:
    """A recorded reply with its times moved so that RECORDED_AT_MS becomes `now_ms`."""
    offset_ms = (now_ms if now_ms is not None else time.time_ns() // 1_000_000) - RECORDED_AT_MS
    return _shift(json.loads((FIXTURES / name).read_text()), offset_ms)


def _shift(value: Any, offset_ms: int) -> Any:
    if isinstance(value, list):
        return [_shift(item, offset_ms) for item in value]
    if not isinstance(value, dict):
        return value
    shifted: dict[str, Any] = {}
    for key, item in value.items():
        if key in TIME_FIELDS and isinstance(item, str):
            then = dt.datetime.fromisoformat(item) + dt.timedelta(milliseconds=offset_ms)
            shifted[key] = then.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif key == "timestamp" and isinstance(item, int):
            shifted[key] = item + offset_ms
        else:
            shifted[key] = _shift(item, offset_ms)
    return shifted


def log_text(name: str) -> str:
    """A recorded job log."""
    return (FIXTURES / name).read_text()


@dataclass
class FakeCI:
    """Routes (raw path -> handler) and every request received, with headers and query."""

    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        """An app answering `routes` by raw (still percent-encoded) path; else 404."""

        async def dispatch(request: web.Request) -> web.StreamResponse:
            self.requests.append(
                {
                    "path": request.raw_path.split("?", 1)[0],
                    "headers": dict(request.headers),
                    "query": list(request.query.items()),
                }
            )
            handler = self.routes.get(request.raw_path.split("?", 1)[0])
            if handler is None:
                return web.json_response({"message": "Not Found"}, status=404)
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", dispatch)
        return app

    def paths(self) -> list[str]:
        """The paths requested, in order."""
        return [r["path"] for r in self.requests]


def json_reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status, headers=headers)

    return handler


def text_reply(text: str, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=text, status=status)

    return handler


def redirect_to(location: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": location})

    return handler


GITHUB_RUNS = "/repos/acme/shop/actions/workflows/ci.yml/runs"
GITHUB_JOBS = "/repos/acme/shop/actions/runs/30433642/jobs"
GITHUB_LOG = "/repos/acme/shop/actions/jobs/399444496/logs"
GITLAB_PIPELINES = "/api/v4/projects/shop%2Fapi/pipelines"
GITLAB_JOBS = "/api/v4/projects/shop%2Fapi/pipelines/2086/jobs"
GITLAB_TRACE = "/api/v4/projects/shop%2Fapi/jobs/94412/trace"
JENKINS_BUILDS = "/job/shop/job/main/api/json"


def github_routes(log_location: str = "/blob/job-399444496.log") -> dict[str, Handler]:
    """GitHub's runs, the failed run's jobs, and the job log behind a 302 redirect."""
    return {
        GITHUB_RUNS: json_reply(recorded("github-runs.json")),
        GITHUB_JOBS: json_reply(recorded("github-jobs.json")),
        GITHUB_LOG: redirect_to(log_location),
        "/blob/job-399444496.log": text_reply(log_text("github-job-log.txt")),
    }


def gitlab_routes() -> dict[str, Handler]:
    """GitLab's pipelines, the failed jobs of the newest failed one, and its trace."""
    return {
        GITLAB_PIPELINES: json_reply(recorded("gitlab-pipelines.json")),
        GITLAB_JOBS: json_reply(recorded("gitlab-jobs-failed.json")),
        GITLAB_TRACE: text_reply(log_text("gitlab-job-trace.txt")),
    }
