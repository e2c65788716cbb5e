"""`zeroprobe serve` as a real process, probing local servers that answer like GitHub and GitLab.

The specs use only the issue's keys, the base URL comes from ZEROPROBE_CONNECTION_<LABEL> and
the token from the variable token_env names; the token appears in no answer and no output.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from aiohttp import web

from tests import test_cli_process
from tests.pipeline_fakes import GITLAB_PIPELINES, FakeCI, github_routes
from tests.servers import free_port
from tests.test_cli_process import Spawn, assert_document, clean_env, request, wait_for
from zeroprobe.simulators.monitoring import ThreadedApp

spawn = test_cli_process.spawn
TOKEN = "ghp_ServeProcessToken7781"

GITHUB_SPEC = """\
---
service_id: serve.ci.github
kind: pipeline_health
provider: github
connection: github-api
token_env: ZP_GH_TOKEN
repository: acme/shop
workflow: ci.yml
branch: main
runs: 20
interval: 2s
timeout: 1s
---
# acme/shop CI
"""

GITLAB_SPEC = """\
service_id: serve.ci.gitlab
kind: pipeline_health
provider: gitlab
connection: gitlab-api
token_env: ZP_GL_TOKEN
project: shop/api
interval: 2s
timeout: 1s
"""


async def echo(request: web.Request) -> web.StreamResponse:
    # A provider whose error body quotes the token it was sent.
    said = request.headers.get("PRIVATE-TOKEN", "")
    return web.json_response({"message": f"401 Unauthorized: {said}"}, status=401)


def test_serve_grades_pipelines_and_never_shows_the_token(spawn: Spawn, tmp_path: Path) -> None:
    contexts = tmp_path / "contexts"
    contexts.mkdir()
    (contexts / "github.md").write_text(GITHUB_SPEC, encoding="utf-8")
    (contexts / "gitlab.yaml").write_text(GITLAB_SPEC, encoding="utf-8")
    github = FakeCI(github_routes())
    gitlab = FakeCI({GITLAB_PIPELINES: echo})
    port = free_port()
    with ThreadedApp(github.app) as github_api, ThreadedApp(gitlab.app) as gitlab_api:
        proc = spawn(
            "serve",
            "--contexts",
            str(contexts),
            "--port",
            str(port),
            env=clean_env(
                ZEROPROBE_CONNECTION_GITHUB_API=github_api.url,
                ZEROPROBE_CONNECTION_GITLAB_API=gitlab_api.url,
                ZP_GH_TOKEN=TOKEN,
                ZP_GL_TOKEN=TOKEN,
                ZEROPROBE_LOG_LEVEL="DEBUG",
            ),
        )
        github_raw, _ = wait_for(proc, port, "PUT", "/serve.ci.github", timeout_s=15)
        gitlab_raw, _ = wait_for(proc, port, "PUT", "/serve.ci.gitlab", timeout_s=15)
        time.sleep(2.2)  # a second round
        answers = [github_raw, gitlab_raw]
        for method, path in [("GET", "/metrics"), ("GET", "/api/v1/results"), ("GET", "/")]:
            _, headers, body = request(port, method, path)
            answers.append(body + json.dumps(headers).encode())
        code, _ = proc.stop()

    github_status = assert_document(github_raw, "serve.ci.github")
    assert github_status["status"] == "RED"
    assert github_status["messages"][0]["actionBody"] == (
        "- main: run #1234 failed 12m ago (3 in a row, last success 5h ago) "
        "https://github.com/acme/shop/actions/runs/30433642 — hint: out of memory (exit 137)"
    )
    gitlab_status = assert_document(gitlab_raw, "serve.ci.gitlab")
    assert gitlab_status["status"] == "RED"
    assert gitlab_status["messages"][0]["actionBody"] == (
        "- GitLab token rejected (HTTP 401 Unauthorized): check token_env ZP_GL_TOKEN and "
        "the token's permissions"
    )
    assert all(r["headers"]["PRIVATE-TOKEN"] == TOKEN for r in gitlab.requests)
    assert code == 0, proc.stderr
    outputs = {"stdout": proc.stdout, "stderr": proc.stderr}
    outputs.update({f"answer {i}": a.decode("utf-8", "replace") for i, a in enumerate(answers)})
    for where, text in outputs.items():
        assert TOKEN not in text, where
