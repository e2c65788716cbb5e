"""Simulated CI APIs for `zeroprobe demo`: GitHub Actions, GitLab CI and Jenkins on one port.

Every repository, project and job answers the same story, with times relative to the moment
of the request: the newest completed run failed (twice in a row, out of memory), a success
before that, and a run in progress. The replies carry the fields each provider documents.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from zeroprobe.simulators.monitoring import ThreadedApp

MIN_S = 60
#: (outcome, minutes ago it started, minutes it took); newest first. None: still running.
STORY: tuple[tuple[str | None, int, int], ...] = (
    (None, 6, 0),
    ("failure", 30, 11),
    ("failure", 75, 12),
    ("success", 140, 10),
    ("success", 260, 9),
    ("cancelled", 300, 1),
    ("success", 400, 10),
)
FIRST_NUMBER = 1200
LOG = (
    "Run npm run build\n"
    + "building chunk\n" * 50
    + "Killed\nProcess completed with exit code 137.\n"
)


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def _numbered() -> list[tuple[int, str | None, float, float]]:
    # A whole second, one behind: ages then read as whole minutes however late the probe asks.
    now = int(time.time()) - 1
    return [
        (FIRST_NUMBER + len(STORY) - i, outcome, now - ago * MIN_S, took * MIN_S)
        for i, (outcome, ago, took) in enumerate(STORY)
    ]


async def _github_runs(request: web.Request) -> web.StreamResponse:
    runs = []
    for number, outcome, started, took in _numbered():
        runs.append(
            {
                "id": 90000 + number,
                "run_number": number,
                "head_branch": request.query.get("branch", "main"),
                "status": "completed" if outcome else "in_progress",
                "conclusion": outcome,
                "created_at": _iso(started),
                "run_started_at": _iso(started),
                "updated_at": _iso(started + took),
                "html_url": f"https://github.example/actions/runs/{90000 + number}",
            }
        )
    return web.json_response({"total_count": len(runs), "workflow_runs": runs})


async def _github_jobs(request: web.Request) -> web.StreamResponse:
    job = {"id": 70000, "status": "completed", "conclusion": "failure", "name": "build"}
    return web.json_response({"total_count": 1, "jobs": [job]})


_GITLAB_STATUS = {
    "failure": "failed",
    "success": "success",
    "cancelled": "canceled",
    None: "running",
}


async def _gitlab_pipelines(request: web.Request) -> web.StreamResponse:
    return web.json_response(
        [
            {
                "id": number,
                "iid": number - 1000,
                "ref": request.query.get("ref", "main"),
                "status": _GITLAB_STATUS[outcome],
                "created_at": _iso(started),
                "updated_at": _iso(started + took),
                "web_url": f"https://gitlab.example/-/pipelines/{number}",
            }
            for number, outcome, started, took in _numbered()
        ]
    )


async def _gitlab_jobs(request: web.Request) -> web.StreamResponse:
    return web.json_response([{"id": 70000, "status": "failed", "name": "build"}])


_JENKINS_RESULT = {"failure": "FAILURE", "success": "SUCCESS", "cancelled": "ABORTED", None: None}


async def _jenkins_builds(request: web.Request) -> web.StreamResponse:
    builds: list[dict[str, Any]] = [
        {
            "number": number,
            "result": _JENKINS_RESULT[outcome],
            "building": outcome is None,
            "timestamp": int(started * 1000),
            "duration": int(took * 1000),
            "url": f"https://jenkins.example/job/demo/{number}/",
        }
        for number, outcome, started, took in _numbered()
    ]
    return web.json_response({"builds": builds})


async def _log(request: web.Request) -> web.StreamResponse:
    return web.Response(text=LOG)


def pipelines_app() -> web.Application:
    """The three providers' read APIs, as far as pipeline_health reads them."""
    app = web.Application()
    app.router.add_get("/repos/{owner}/{repo}/actions/workflows/{workflow}/runs", _github_runs)
    app.router.add_get("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs", _github_jobs)
    app.router.add_get("/repos/{owner}/{repo}/actions/jobs/{job_id}/logs", _log)
    app.router.add_get("/api/v4/projects/{project}/pipelines", _gitlab_pipelines)
    app.router.add_get("/api/v4/projects/{project}/pipelines/{pipeline}/jobs", _gitlab_jobs)
    app.router.add_get("/api/v4/projects/{project}/jobs/{job}/trace", _log)
    app.router.add_get("/{path:(job/[^/]+/)+}api/json", _jenkins_builds)
    app.router.add_get("/{path:(job/[^/]+/)+}{number:\\d+}/consoleText", _log)
    return app


class SimulatedPipelines(ThreadedApp):
    """GitHub, GitLab and Jenkins APIs at `url`, for the demo."""

    def __init__(self) -> None:
        super().__init__(pipelines_app)
