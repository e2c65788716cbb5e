"""End to end: a real `zeroprobe serve` process probes a loopback web server through an
http_endpoint context, and `PUT /<id>` answers the Zero Problem document with its lines."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.test_cli_process import (
    LOCALHOST,
    Spawn,
    assert_document,
    clean_env,
    free_port,
    request,
    spawn,  # noqa: F401 - the fixture
    wait_for,
)
from zeroprobe.simulators.monitoring import ThreadedApp

SERVICE_ID = "shop.web.health"
PASSWORD = "e2e-Pa55word-7"
BASIC = "Basic " + base64.b64encode(f"monitor:{PASSWORD}".encode()).decode()
SPEC = f"""\
---
service_id: {SERVICE_ID}
kind: http_endpoint
connection: shop-web
interval: 2s
timeout: 1s
checks:
  - path: /health
    body_matches: '"status": *"ok"'
  - path: /cart
    expect_status: [401]
---
# Shop health

**Runbook.** Look at the shop's pods.
"""


def shop_app() -> web.Application:
    """/health answers only with the right basic auth; /cart always asks for it."""

    async def health(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != BASIC:
            return web.Response(status=401, text="who are you?")
        return web.json_response({"status": "ok"})

    async def cart(request: web.Request) -> web.Response:
        return web.Response(status=401, text="log in first")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/cart", cart)
    return app


@pytest.fixture
def shop() -> Iterator[ThreadedApp]:
    with ThreadedApp(shop_app) as server:
        yield server


def test_serve_probes_the_endpoint_and_put_answers_its_lines(
    spawn: Spawn,  # noqa: F811 - the fixture imported above
    shop: ThreadedApp,
    tmp_path: Path,
) -> None:
    contexts = tmp_path / "contexts"
    contexts.mkdir()
    (contexts / f"{SERVICE_ID}.md").write_text(SPEC, encoding="utf-8")
    port = free_port()
    connection = f"http://monitor:{PASSWORD}@{LOCALHOST}:{shop.port}"
    proc = spawn(
        "serve",
        "--contexts",
        str(contexts),
        "--port",
        str(port),
        env=clean_env(ZEROPROBE_CONNECTION_SHOP_WEB=connection),
    )

    raw, _ = wait_for(proc, port, "PUT", f"/{SERVICE_ID}", timeout_s=20)
    status = assert_document(raw, SERVICE_ID)
    metrics_status, _, metrics = request(port, "GET", "/metrics")
    code, _ = proc.stop()

    lines = status["messages"][0]["actionBody"].split("\n")
    host = f"{LOCALHOST}:{shop.port}"
    assert status["status"] == "GREEN", lines
    assert len(lines) == 2, lines
    assert re.fullmatch(rf"- GET {re.escape(host)}/health 200 in \d+ms", lines[0]), lines
    assert re.fullmatch(rf"- GET {re.escape(host)}/cart 401 in \d+ms", lines[1]), lines
    everything = json.dumps(status) + metrics.decode() + proc.stdout + proc.stderr
    assert PASSWORD not in everything
    assert BASIC.split()[1] not in everything
    assert metrics_status == 200
    assert 'zeroprobe_http_endpoint_response_time_seconds{check="GET /health"' in metrics.decode()
    assert code == 0, proc.stderr
    assert "Traceback" not in proc.stderr
