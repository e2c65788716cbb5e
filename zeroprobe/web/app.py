"""The HTTP layer: an aiohttp app that only reads the engine's store.

The app has no middleware: aiohttp runs every request of an app with middlewares through
them and through a wrapper of its own, and `PUT /{service_id}`, the monitoring system's call,
is the one request that must be cheap. Every error body is still JSON:

- the document handler catches its own failures, and every other handler is wrapped
  (`_guarded`): a crash is a JSON 500 and a logged traceback, an HTTP error a JSON body;
- a path no route serves reaches `NoRoute`, registered last under "/": a JSON 404, or a JSON
  405 with `Allow` when other methods serve the path;
- access control (auth.py) wraps each protected handler, and only when a token is set.

`/{service_id}` is registered first: aiohttp looks up routes by path prefix, and "/" holds the
catch-all, the status page and `NoRoute`, so a `PUT /<id>` matches at its first candidate.
Fixed paths (/livez, /api/v1/...) are found by their own prefix before "/" is tried.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from aiohttp import hdrs, web
from yarl import URL

from zeroprobe.config.access import OPEN_ENDPOINTS
from zeroprobe.engine.core import Check, Engine
from zeroprobe.engine.reload import RELOAD_PATH, RELOADER, Reloader, reload_endpoint
from zeroprobe.notify.notifier import Notifier
from zeroprobe.web.api import add_api_routes, add_notifications_route
from zeroprobe.web.auth import TokenGate, gate_for, unauthorized
from zeroprobe.web.cluster import CLUSTER, Cluster
from zeroprobe.web.openapi import add_openapi_route
from zeroprobe.web.page import add_ui_routes
from zeroprobe.web.scrape import serve_metrics

log = logging.getLogger(__name__)

ENGINE = web.AppKey("engine", Engine)
NOTIFIER = web.AppKey("notifier", Notifier)

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


def _crashed(request: web.Request) -> web.Response:
    """A handler failed: log the traceback (of the exception being handled), answer 500."""
    log.exception("unhandled error serving %s %s", request.method, request.path)
    return json_error(500, "internal server error")


def _guarded(handler: Handler) -> Handler:
    """`handler` with aiohttp's HTTP errors as JSON bodies and any crash as a JSON 500."""

    async def guarded(request: web.Request) -> web.StreamResponse:
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
        except Exception:
            return _crashed(request)

    guarded.__doc__ = handler.__doc__
    return guarded


class NoRoute(web.AbstractResource):
    """What answers when no route matched: JSON 405 with `Allow` when another route serves the
    path with other methods, JSON 404 otherwise (as aiohttp decides, but with JSON bodies).

    Registered last under "/", the prefix aiohttp's router tries last for every path, it
    matches any path and method there. It lists no routes: it is not an operation of the API.
    """

    def __init__(self, router: web.UrlDispatcher) -> None:
        super().__init__()
        self._router = router
        self._route = web.ResourceRoute(hdrs.METH_ANY, self._answer, self)

    @property
    def canonical(self) -> str:
        return "/"

    def url_for(self, **kwargs: str) -> URL:
        raise NotImplementedError("NoRoute has no URL")

    def add_prefix(self, prefix: str) -> None:
        raise NotImplementedError("NoRoute cannot be mounted under a prefix")

    def get_info(self) -> dict[str, str]:  # type: ignore[override]
        return {}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[web.AbstractRoute]:
        return iter(())

    async def resolve(self, request: web.Request) -> tuple[web.UrlMappingMatchInfo, set[str]]:
        return web.UrlMappingMatchInfo({}, self._route), set()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        allowed: set[str] = set()
        for resource in self._router.resources():
            if resource is not self:
                _, methods = await resource.resolve(request)
                allowed |= methods
        if allowed:
            response = json_error(405, "method not allowed")
            response.headers[hdrs.ALLOW] = ",".join(sorted(allowed))
            return response
        return json_error(404, "not found")


def _small_body_received(request: web.Request) -> bool:
    """True when the request's body (it has one) has arrived whole, at most MAX_BODY_BYTES.

    Such a body needs no reading: aiohttp's parser has already taken its bytes off the
    connection (with either framing), so the next request on it parses as usual, and the
    buffer goes with the request. `total_bytes` counts what a read would return (decoded
    chunks), which is what `_discard_body` limits too."""
    payload = request.content
    return payload.is_eof() and payload.total_bytes <= MAX_BODY_BYTES


async def _discard_body(request: web.Request) -> bool:
    """Read and drop the request body; False when it is larger than MAX_BODY_BYTES."""
    if not request.body_exists or _small_body_received(request):
        return True  # nothing left to read: no await
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


def document_handler(engine: Engine, gate: TokenGate | None) -> Handler:
    """PUT|GET /{service_id}: the newest Zero Problem document of a probe.

    The hot path, kept short: the token check and the crash guard are inline rather than
    wrappers, and the usual request (a known id with a result, no body or a small one that
    has arrived whole) awaits nothing. The store tracks exactly the loaded ids
    (Engine.apply), so a result means a known id."""

    async def service_document(request: web.Request) -> web.StreamResponse:
        """PUT|GET /{service_id}: the newest Zero Problem document of a probe."""
        try:
            if gate is not None and not gate.allows(request.headers.get(hdrs.AUTHORIZATION)):
                return unauthorized()
            service_id = request.match_info["service_id"]
            result = engine.store.newest(service_id)
            if result is None or (request.body_exists and not _small_body_received(request)):
                return await _document_slow_path(engine, request, service_id)
            return web.Response(body=result.document, content_type="application/json")
        except Exception:
            return _crashed(request)

    return service_document


async def _document_slow_path(
    engine: Engine, request: web.Request, service_id: str
) -> web.StreamResponse:
    """The document request that is not the usual one: unknown id, a body, no result yet."""
    if not engine.knows(service_id):
        return json_error(404, f"unknown service id {service_id!r}")
    if not await _discard_body(request):
        return json_error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    cluster = request.app.get(CLUSTER)
    if cluster is not None:  # another shard's id, or a reshard under way (web/cluster.py)
        answer = await cluster.document(request, service_id)
        if answer is not None:
            return answer
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
    checks = request.app[ENGINE].liveness()
    cluster = request.app.get(CLUSTER)
    if cluster is not None:  # every shard's ids, from their owners
        checks = await cluster.liveness(checks)
    return _checks_response(checks)


async def livez(request: web.Request) -> web.Response:
    """GET /livez: the process itself; what a Kubernetes livenessProbe should call."""
    return _checks_response(request.app[ENGINE].process_health())


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: contexts loaded and the first round of probes finished."""
    return _checks_response(request.app[ENGINE].readiness())


async def metrics(request: web.Request) -> web.StreamResponse:
    """GET /metrics: Prometheus text exposition or OpenMetrics, gzip when accepted."""
    return await serve_metrics(request, request.app[ENGINE].metrics)


HEALTH_HANDLERS: dict[str, Handler] = {
    "liveness": liveness,
    "livez": livez,
    "readyz": readyz,
    "metrics": metrics,
}


def create_app(
    engine: Engine, *, start_engine: bool = True, notifier: Notifier | None = None
) -> web.Application:
    """The aiohttp app; the engine starts and stops with it unless `start_engine` is False,
    and so does the notifier (started before the engine, stopped after it).

    With a token in the engine's settings, every route but the open health endpoints (those
    not named in `auth_protect`) answers 401 without it."""
    settings = engine.settings
    gate = gate_for(settings.auth_token)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[ENGINE] = engine
    if notifier is not None:
        app[NOTIFIER] = notifier

        async def notifier_lifecycle(app: web.Application) -> AsyncIterator[None]:
            await notifier.start()
            yield
            await notifier.stop()

        # Before the engine's: the first results are compared with the colours last notified,
        # and the last transitions are written after the engine stopped.
        app.cleanup_ctx.append(notifier_lifecycle)
    cluster = None if engine.topology.single else Cluster(engine)
    if cluster is not None:
        app[CLUSTER] = cluster
        # Before the engine's: the warm start's results are in the store before its first runs.
        app.cleanup_ctx.append(cluster.lifecycle)
    if start_engine:

        async def engine_lifecycle(app: web.Application) -> AsyncIterator[None]:
            await engine.start()
            yield
            await engine.stop()

        app.cleanup_ctx.append(engine_lifecycle)

    def wrapped(handler: Handler, *, protect: bool = True) -> Handler:
        guarded = _guarded(handler)
        return gate.protect(guarded) if gate is not None and protect else guarded

    router = app.router
    # First, so that it is the first candidate under "/" (see the module's docstring).
    document = document_handler(engine, gate)
    router.add_route("PUT", "/{service_id}", document)
    router.add_get("/{service_id}", document)
    # The status page (/, /ui/..., /static/...), its JSON API and the OpenAPI document register
    # plain handlers on a scratch router; each is registered here wrapped.
    scratch = web.UrlDispatcher()
    add_ui_routes(scratch, engine, notifier, cluster)
    add_api_routes(scratch, engine, cluster)
    add_notifications_route(scratch, notifier)
    add_openapi_route(scratch)
    for route in scratch.routes():
        assert route.resource is not None
        router.add_route(route.method, route.resource.canonical, wrapped(route.handler))
    for name, handler in HEALTH_HANDLERS.items():
        protect = name in settings.auth_protect
        router.add_get(OPEN_ENDPOINTS[name], wrapped(handler, protect=protect), allow_head=True)
    # Service ids cannot contain '/': /-/reload and a probe's path never collide.
    app[RELOADER] = Reloader(engine)
    router.add_post(RELOAD_PATH, wrapped(reload_endpoint))
    if cluster is not None:
        cluster.add_routes(router, wrapped)
    router.register_resource(NoRoute(router))
    return app
