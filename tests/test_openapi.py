"""/openapi.json: a valid OpenAPI 3.1 document of every route, and true to the answers."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pytest_aiohttp import AiohttpClient
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from schemas.grading import Grade, Line
from schemas.zero_problem import ZeroProblemDocument
from tests.status_page_support import XSS_LINES, Script, scripted, stage, staged_engine
from zeroprobe.engine.core import Engine
from zeroprobe.web.app import create_app
from zeroprobe.web.openapi import openapi_document

Client = TestClient[web.Request, web.Application]
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
DOC_URI = "urn:zeroprobe:openapi"


def test_document_is_valid_openapi_3_1() -> None:
    document = openapi_document()

    validate(document)
    assert document["openapi"].startswith("3.1")


def routed(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route the router has."""
    operations = set()
    for route in app.router.routes():
        operations.add((route.method.lower(), route.resource.canonical if route.resource else "?"))
    return operations


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


async def test_every_route_is_documented_and_every_operation_is_routed() -> None:
    engine = staged_engine([scripted("any.probe")])
    try:
        app = create_app(engine, start_engine=False)
        missing = routed(app) - documented(openapi_document())
        phantom = documented(openapi_document()) - routed(app)
    finally:
        await engine.stop()

    assert not missing, f"routes missing from zeroprobe/openapi.py: {sorted(missing)}"
    assert not phantom, f"documented operations no route serves: {sorted(phantom)}"
    assert ("put", "/{service_id}") in documented(openapi_document())
    assert ("head", "/") in documented(openapi_document())


def test_zero_problem_document_schema_is_the_pydantic_models() -> None:
    document = openapi_document()
    put = document["paths"]["/{service_id}"]["put"]["responses"]["200"]

    schema = put["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ZeroProblemDocument"}
    own = ZeroProblemDocument.model_json_schema(ref_template="#/components/schemas/{model}")
    components = document["components"]["schemas"]
    assert components["ZeroProblemDocument"] == {k: v for k, v in own.items() if k != "$defs"}
    for name, sub in own.get("$defs", {}).items():
        assert components[name] == sub


# Answers against the document --------------------------------------------------------------------


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def validator_for(pointer: str) -> Draft202012Validator:
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(openapi_document(), default_specification=DRAFT202012)
    )
    return Draft202012Validator({"$ref": f"{DOC_URI}#/{pointer}"}, registry=registry)


def operation_of(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The documented operation serving `path`: a fixed path wins over a template."""
    paths = openapi_document()["paths"]
    candidates = sorted(paths, key=lambda template: template.count("{"))
    for template in candidates:
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method in paths[template]:
            return template, paths[template][method]
    return None


async def check_against_document(method: str, path: str, response: ClientResponse) -> None:
    """The answer's status, media type, headers and JSON body are what the document says."""
    body = await response.read()
    found = operation_of(method.lower(), path)
    if found is None:
        # No operation (an undocumented method or path): the shared error body.
        assert response.status in (404, 405), (method, path, response.status)
        errors = validator_for(_pointer("components", "schemas", "ErrorResponse"))
        errors.validate(json.loads(body))
        return
    template, operation = found
    declared = operation["responses"].get(str(response.status))
    assert declared is not None, (method, path, response.status, body[:200])
    for header in declared.get("headers", {}):
        assert header in response.headers, (method, path, header)
    if method == "HEAD":
        assert body == b""
        return
    content = declared["content"]
    media = response.content_type
    assert media in content, (method, path, media, list(content))
    if media == "application/json":
        pointer = _pointer(
            "paths", template, method.lower(), "responses", str(response.status), "content"
        )
        validator_for(f"{pointer}/{_pointer(media)}/schema").validate(json.loads(body))


@pytest.fixture
async def pending_client(aiohttp_client: AiohttpClient) -> AsyncIterator[Client]:
    """Not started: one probe with a result (with hostile lines), one without."""
    engine = staged_engine([scripted("api.done"), scripted("api.pending")])
    stage(engine, "api.done", XSS_LINES)
    stage(engine, "api.done", [Line("- all good", Grade.GREEN)])
    try:
        yield await aiohttp_client(create_app(engine, start_engine=False))
    finally:
        await engine.stop()


@pytest.fixture
async def running_client(aiohttp_client: AiohttpClient) -> AsyncIterator[Client]:
    """Started: its first round has finished, so every health check passes."""
    script = Script({"api.live": [Line("- member db1:27017 lag 10ms", Grade.GREEN)]})
    engine: Engine = staged_engine([scripted("api.live")], script, first_run_spread_s=0)
    client = await aiohttp_client(create_app(engine))
    deadline = time.monotonic() + 10
    while (await client.get("/readyz")).status != 200:
        assert time.monotonic() < deadline, "the first round did not finish"
        await asyncio.sleep(0.05)
    yield client


REQUESTS_WHEN_PENDING = [
    ("GET", "/"),
    ("HEAD", "/"),
    ("GET", "/?only=problems&refresh=2"),
    ("GET", "/ui/api.done"),
    ("HEAD", "/ui/api.done"),
    ("GET", "/ui/api.pending"),
    ("GET", "/ui/no.such.probe"),
    ("GET", "/static/app.js?v=1"),
    ("GET", "/static/app.css"),
    ("GET", "/static/favicon.svg"),
    ("GET", "/api/v1/results"),
    ("GET", "/api/v1/results/api.done"),
    ("GET", "/api/v1/results/api.pending"),
    ("GET", "/api/v1/results/no.such.probe"),
    ("GET", "/api/v1/results/api.done/history"),
    ("GET", "/api/v1/results/no.such.probe/history"),
    ("HEAD", "/api/v1/results"),
    ("GET", "/openapi.json"),
    ("GET", "/liveness"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("PUT", "/api.done"),
    ("GET", "/api.done"),
    ("HEAD", "/api.done"),
    ("PUT", "/api.pending"),
    ("GET", "/api.pending"),
    ("PUT", "/no.such.probe"),
    ("GET", "/no.such.probe"),
    ("POST", "/api.done"),
    ("DELETE", "/api/v1/results"),
    ("GET", "/no/such/path"),
]


async def test_answers_match_the_document(pending_client: Client) -> None:
    statuses = {}
    for method, path in REQUESTS_WHEN_PENDING:
        response = await pending_client.request(method, path)
        statuses[(method, path)] = response.status
        await check_against_document(method, path.split("?")[0], response)
    oversized = await pending_client.put("/api.done", data=b"x" * (64 * 1024 + 1))
    await check_against_document("PUT", "/api.done", oversized)

    # The table covers the error answers the document promises.
    assert oversized.status == 413
    assert statuses[("PUT", "/api.pending")] == 503
    assert statuses[("GET", "/no.such.probe")] == 404
    assert statuses[("GET", "/ui/no.such.probe")] == 404
    assert statuses[("POST", "/api.done")] == 405
    assert statuses[("GET", "/liveness")] == 503
    assert statuses[("GET", "/livez")] == 503


async def test_answers_of_a_running_service_match_the_document(running_client: Client) -> None:
    for path in ("/liveness", "/livez", "/readyz", "/api.live", "/api/v1/results", "/"):
        response = await running_client.get(path)
        assert response.status == 200, path
        await check_against_document("GET", path, response)


async def test_served_document_is_the_built_one(pending_client: Client) -> None:
    response = await pending_client.get("/openapi.json")

    assert response.status == 200
    assert json.loads(await response.read()) == openapi_document()
