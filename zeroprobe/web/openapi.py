"""The OpenAPI 3.1 document of every endpoint, served at /openapi.json.

Response schemas are the pydantic models' own JSON Schema (schemas.zero_problem,
schemas.status_api), so they describe what the handlers answer. A test checks that every
route of the app's router has an operation here, and the reverse: a new route needs an entry
in `_paths()`.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas.context_spec import SERVICE_ID_PATTERN
from schemas.status_api import (
    ErrorResponse,
    HealthResponse,
    HistoryResponse,
    NotificationsResponse,
    ProbeResultResponse,
    ResultsResponse,
)
from schemas.zero_problem import ZeroProblemDocument
from zeroprobe import __version__
from zeroprobe.engine.reload import RELOAD_PATH
from zeroprobe.web.api import NOTIFICATIONS_PATH, RESULTS_PATH, UI_PATH
from zeroprobe.web.page import REFRESH_RANGE_S, STATIC_FILES

OPENAPI_PATH = "/openapi.json"
_MODELS: tuple[type[BaseModel], ...] = (
    ZeroProblemDocument,
    ResultsResponse,
    ProbeResultResponse,
    HistoryResponse,
    ErrorResponse,
    HealthResponse,
    NotificationsResponse,
)
_REF = "#/components/schemas/{model}"

Json = dict[str, Any]


def _ref(model: type[BaseModel]) -> Json:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str, **extra: Any) -> Json:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(model)}},
        **extra,
    }


def _error(description: str, **extra: Any) -> Json:
    return _json(ErrorResponse, description, **extra)


def _text(media_type: str, description: str) -> Json:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


_SERVICE_ID = {
    "name": "service_id",
    "in": "path",
    "required": True,
    "description": f"A probe's service id (valid ids match {SERVICE_ID_PATTERN}).",
    "schema": {"type": "string"},
}
_REFRESH = {
    "name": "refresh",
    "in": "query",
    "required": False,
    "description": "Seconds between the page's refreshes (default 10; clamped to this range).",
    "schema": {"type": "number", "minimum": REFRESH_RANGE_S[0], "maximum": REFRESH_RANGE_S[1]},
}
_UNKNOWN_ID = "Unknown service id."
_STRINGS = {"type": "array", "items": {"type": "string"}}
_RELOAD_APPLIED = {
    "type": "object",
    "properties": {
        "status": {"const": "ok"},
        **{key: _STRINGS for key in ("added", "removed", "changed", "unchanged", "warnings")},
    },
    "required": ["status", "added", "removed", "changed", "unchanged", "warnings"],
}
_RELOAD_REJECTED = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "status": {"const": 422},
        **{key: _STRINGS for key in ("errors", "warnings", "probing")},
    },
    "required": ["error", "status", "errors"],
}


def _health(operation_id: str, summary: str) -> Json:
    return {
        "get": {
            "operationId": operation_id,
            "tags": ["health"],
            "summary": summary,
            "responses": {
                "200": _json(HealthResponse, "Every check passed."),
                "503": _json(HealthResponse, "A check failed; each failing check says why."),
            },
        }
    }


def _paths() -> Json:
    document_responses: Json = {
        "200": _json(ZeroProblemDocument, "The newest Zero Problem document of the probe."),
        "404": _error(_UNKNOWN_ID),
        "413": _error("Request body larger than 64 KiB."),
        "503": _error(
            "No result yet: the first run has not finished.",
            headers={
                "Retry-After": {
                    "description": "Seconds until a first result can be expected.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
        ),
    }
    paths: Json = {
        "/": {
            "get": {
                "operationId": "getStatusPage",
                "tags": ["status page"],
                "summary": "The status page: every probe, worst first.",
                "parameters": [
                    {
                        "name": "only",
                        "in": "query",
                        "required": False,
                        "description": "`problems`: hide fresh GREEN probes.",
                        "schema": {"type": "string", "enum": ["problems"]},
                    },
                    _REFRESH,
                ],
                "responses": {"200": _text("text/html", "The page.")},
            }
        },
        UI_PATH + "/{service_id}": {
            "parameters": [_SERVICE_ID],
            "get": {
                "operationId": "getProbePage",
                "tags": ["status page"],
                "summary": "One probe: its result, runbook (the spec's body) and settings.",
                "parameters": [_REFRESH],
                "responses": {
                    "200": _text("text/html", "The page."),
                    "404": {
                        "description": "Unknown service id (a page), or no such path (JSON).",
                        "content": {
                            "text/html": {"schema": {"type": "string"}},
                            "application/json": {"schema": _ref(ErrorResponse)},
                        },
                    },
                },
            },
        },
        RESULTS_PATH: {
            "get": {
                "operationId": "listResults",
                "tags": ["api"],
                "summary": "Every probe with its newest result, worst first.",
                "responses": {"200": _json(ResultsResponse, "Every probe.")},
            }
        },
        RESULTS_PATH + "/{service_id}": {
            "parameters": [_SERVICE_ID],
            "get": {
                "operationId": "getResult",
                "tags": ["api"],
                "summary": "One probe with its newest result.",
                "responses": {
                    "200": _json(ProbeResultResponse, "The probe."),
                    "404": _error(_UNKNOWN_ID),
                },
            },
        },
        NOTIFICATIONS_PATH: {
            "get": {
                "operationId": "getNotifications",
                "tags": ["api"],
                "summary": "Each notification sink and Alertmanager with its health; never a URL.",
                "responses": {"200": _json(NotificationsResponse, "The sinks.")},
            }
        },
        RESULTS_PATH + "/{service_id}/history": {
            "parameters": [_SERVICE_ID],
            "get": {
                "operationId": "getResultHistory",
                "tags": ["api"],
                "summary": "The probe's last results (up to 60), oldest first.",
                "responses": {
                    "200": _json(HistoryResponse, "The history."),
                    "404": _error(_UNKNOWN_ID),
                },
            },
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "getOpenApi",
                "tags": ["api"],
                "summary": "This document.",
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/liveness": _health(
            "getLiveness",
            "The Zero Problem collector contract: targets reached and every result fresh.",
        ),
        "/livez": _health(
            "getLivez", "The process itself (event loop, scheduler): for a livenessProbe."
        ),
        "/readyz": _health("getReadyz", "Contexts loaded and the first round of probes finished."),
        "/metrics": {
            "get": {
                "operationId": "getMetrics",
                "tags": ["health"],
                "summary": "Prometheus text exposition.",
                "responses": {"200": _text("text/plain", "Metrics, names prefixed zeroprobe_.")},
            }
        },
        "/{service_id}": {
            "parameters": [_SERVICE_ID],
            "put": {
                "operationId": "putDocument",
                "tags": ["zero problem"],
                "summary": "The monitoring system's call: the newest document, from memory.",
                "requestBody": {
                    "required": False,
                    "description": "Read up to 64 KiB and ignored.",
                    "content": {"*/*": {"schema": {}}},
                },
                "responses": document_responses,
            },
            "get": {
                "operationId": "getDocument",
                "tags": ["zero problem"],
                "summary": "The same document, for people and scripts.",
                "responses": document_responses,
            },
        },
    }
    paths[RELOAD_PATH] = {
        "post": {
            "operationId": "reloadContexts",
            "tags": ["health"],
            "summary": "Re-read the contexts folder; apply the set only when every spec is valid.",
            "responses": {
                "200": {
                    "description": "Applied: what changed, by service id.",
                    "content": {"application/json": {"schema": _RELOAD_APPLIED}},
                },
                "422": {
                    "description": "Rejected: every error; the running set is unchanged.",
                    "content": {"application/json": {"schema": _RELOAD_REJECTED}},
                },
            },
        }
    }
    for name, media_type in STATIC_FILES.items():
        paths[f"/static/{name}"] = {
            "get": {
                "operationId": "getStatic" + name.title().replace(".", ""),
                "tags": ["status page"],
                "summary": f"The status page's {name}.",
                "parameters": [
                    {
                        "name": "v",
                        "in": "query",
                        "required": False,
                        "description": "Content hash; ignored, changes the URL on every change.",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"200": _text(media_type, name)},
            }
        }
    return paths


_SECURITY_SCHEMES = {
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The token of ZEROPROBE_AUTH_TOKEN (or ZEROPROBE_AUTH_TOKEN_FILE).",
    },
    "basicToken": {
        "type": "http",
        "scheme": "basic",
        "description": "Any user name, the token as password (what browsers send).",
    },
}
# Either scheme, or none when access control is off (no token configured).
_SECURITY: list[dict[str, list[str]]] = [{"bearerToken": []}, {"basicToken": []}, {}]
_UNAUTHORIZED = _error(
    "Access control is on and the request lacks the token (the health endpoints only when "
    "ZEROPROBE_AUTH_PROTECT names them).",
    headers={
        "WWW-Authenticate": {
            "description": 'Bearer realm="zeroprobe" and Basic realm="zeroprobe", one each.',
            "schema": {"type": "string"},
        }
    },
)


def _with_auth(paths: Json) -> Json:
    """Every operation may answer 401: any can need the token (the health endpoints when
    ZEROPROBE_AUTH_PROTECT closes them); the document does not depend on the settings."""
    for item in paths.values():
        for key, operation in item.items():
            if key != "parameters":
                operation["responses"].setdefault("401", copy.deepcopy(_UNAUTHORIZED))
    return paths


def _with_head(paths: Json) -> Json:
    """aiohttp answers HEAD wherever it answers GET: the same responses without a body."""
    for item in paths.values():
        get = item.get("get")
        if get is None:
            continue
        head = copy.deepcopy(get)
        head["operationId"] = "head" + get["operationId"].removeprefix("get")
        head["summary"] = "Headers of: " + get["summary"]
        for response in head["responses"].values():
            response.pop("content", None)
        item["head"] = head
    return paths


@functools.cache
def openapi_document() -> Json:
    """The whole document (built once)."""
    _, defs = models_json_schema([(model, "serialization") for model in _MODELS], ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "zeroprobe",
            "version": __version__,
            "description": (
                "Scheduled health probes served as Zero Problem documents, a status page and "
                'its JSON API. Every error body is JSON {"error": ..., "status": ...} '
                "(except the HTML 404 page of /ui/{service_id}): 404 for an unknown path, "
                "405 with Allow for a method a path does not serve; 400 for a request that "
                "cannot be parsed or exceeds the header limits (8190-byte request line and "
                "header lines, 100 headers); 408, then the connection is closed, for a request "
                "not sent whole within the read timeout (ZEROPROBE_REQUEST_READ_TIMEOUT, 10 s). "
                "Access control: with a token configured (ZEROPROBE_AUTH_TOKEN or "
                "ZEROPROBE_AUTH_TOKEN_FILE) every operation requires it, as "
                "`Authorization: Bearer <token>` or HTTP Basic with the token as password (any "
                "user name), except /livez, /readyz, /liveness and /metrics, which stay open "
                "unless ZEROPROBE_AUTH_PROTECT names them; this document too. Without the "
                "token: 401 with one WWW-Authenticate challenge per scheme. With no token "
                "configured, nothing requires one."
            ),
        },
        "tags": [
            {"name": "zero problem", "description": "The monitoring system's contract."},
            {"name": "health", "description": "Liveness, readiness and metrics."},
            {"name": "status page", "description": "HTML for people."},
            {"name": "api", "description": "JSON for the page and for scripts."},
        ],
        "paths": _with_head(_with_auth(_paths())),
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": copy.deepcopy(_SECURITY_SCHEMES),
        },
        "security": copy.deepcopy(_SECURITY),
    }


@functools.cache
def _document_bytes() -> bytes:
    return (json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n").encode()


async def openapi_handler(request: web.Request) -> web.Response:
    """GET /openapi.json."""
    return web.Response(body=_document_bytes(), content_type="application/json")


def add_openapi_route(router: web.UrlDispatcher) -> None:
    """Register /openapi.json (app.create_app wraps the handler: JSON errors, access control)."""
    router.add_get(OPENAPI_PATH, openapi_handler)
