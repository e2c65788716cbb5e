"""The HTTP layer: an aiohttp app that only reads the engine's store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from zeroprobe.api import add_api_routes
from zeroprobe.engine import Check, Engine
from zeroprobe.metrics import METRICS_CONTENT_TYPE
from zeroprobe.openapi import add_openapi_route
from zeroprobe.reload import RELOAD_PATH, RELOADER, Reloader, reload_endpoint
from zeroprobe.ui import add_ui_routes

log = logging.getLogger(__name__)

ENGINE = web.AppKey("engine", Engine)

#: The monitoring system may send a body with its PUT; it is read up to this size and ignored.
MAX_BODY_BYTES = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, message: str, **extra: object) -> web.Response:
    """Every error body is JSON: {"error": ..., "status": ...}."""
    headers = {}
    retry_after = extra.pop("retry_after_s", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
        extra["retry_after_s"] = retry_after
    return web.json_response(
        {"error": message, "status": status, **extra}, status=status, headers=headers
    )


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's text errors (404 route, 405, 413) and any crash into JSON bodies."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = json_error(exc.status, (exc.reason or "error").lower())
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return json_error(500, "internal server error")


async def _discard_body(request: web.Request) -> bool:
    """Read and drop the request body; False when it is larger than MAX_BODY_BYTES."""
    if not request.body_exists:
        return True  # the usual PUT: nothing to read, no await
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return False
    received = 0
    while True:
        chunk = await request.content.read(16 * 1024)
        if not chunk:
            return True
        received += len(chunk)
        if received > MAX_BODY_BYTES:
            return False


async def service_document(request: web.Request) -> web.StreamResponse:
    """PUT|GET /{service_id}: the newest Zero Problem document of a probe."""
    engine = request.app[ENGINE]
    service_id = request.match_info["service_id"]
    if not engine.knows(service_id):
        return json_error(404, f"unknown service id {service_id!r}")
    if not await _discard_body(request):
        return json_error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    result = engine.store.newest(service_id)
    if result is None:
        return json_error(
            503,
            f"no result yet for {service_id!r}: the first run has not finished",
            retry_after_s=engine.retry_after_s(service_id),
        )
    return web.Response(body=result.document, content_type="application/json")


def _checks_response(checks: list[Check]) -> web.Response:
    ok = all(c.ok for c in checks)
    body = {"status": "ok" if ok else "failing", "checks": [c.as_json() for c in checks]}
    return web.json_response(body, status=200 if ok else 503)


async def liveness(request: web.Request) -> web.Response:
    """GET /liveness: the Zero Problem collector contract (targets reached, results fresh)."""
    return _checks_response(request.app[ENGINE].liveness())


async def livez(request: web.Request) -> web.Response:
    """GET /livez: the process itself; what a Kubernetes livenessProbe should call."""
    return _checks_response(request.app[ENGINE].process_health())


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: contexts loaded and the first round of probes finished."""
    return _checks_response(request.app[ENGINE].readiness())


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text exposition."""
    body = request.app[ENGINE].metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return response


def create_app(engine: Engine, *, start_engine: bool = True) -> web.Application:
    """The aiohttp app; the engine starts and stops with it unless `start_engine` is False."""
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
    app[ENGINE] = engine
    if start_engine:

        async def engine_lifecycle(app: web.Application) -> AsyncIterator[None]:
            await engine.start()
            yield
            await engine.stop()

        app.cleanup_ctx.append(engine_lifecycle)
    # The status page (/, /ui/..., /static/...), its JSON API and the OpenAPI document: all
    # registered before the catch-all /{service_id} (their first segments are reserved ids).
    add_ui_routes(app.router, engine)
    add_api_routes(app.router, engine)
    add_openapi_route(app.router)
    app.router.add_get("/liveness", liveness)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    # Service ids cannot contain '/': /-/reload and a probe's path never collide.
    app[RELOADER] = Reloader(engine)
    app.router.add_post(RELOAD_PATH, reload_endpoint)
    app.router.add_route("PUT", "/{service_id}", service_document)
    app.router.add_get("/{service_id}", service_document)
    return app
