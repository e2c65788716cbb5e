"""The JSON API for the status page and for scripts: newest results and their history."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from schemas.context_spec import SpecBase
from schemas.status_api import (
    ErrorResponse,
    HistoryEntry,
    HistoryPoint,
    HistoryResponse,
    NotificationsResponse,
    ProbeLinks,
    ProbeResult,
    ProbeResultResponse,
    ResultLine,
    ResultsResponse,
    SinkStatus,
)
from zeroprobe import __version__
from zeroprobe.config.settings import Settings, result_age_limit_s
from zeroprobe.engine.core import Engine
from zeroprobe.engine.runner import now_ms
from zeroprobe.engine.store import HistoryRun, Result
from zeroprobe.notify.notifier import Notifier
from zeroprobe.web.cluster import Cluster, Remote
from zeroprobe.web.markup import line_nodes

RESULTS_PATH = "/api/v1/results"
UI_PATH = "/ui"

# Worst first: RED, YELLOW, no result yet, GREEN.
_ORDER = {"RED": 0, "YELLOW": 1, None: 2, "GREEN": 3}


def stale_after_s(settings: Settings, spec: SpecBase) -> float:
    """Age past which a result is stale: the limit /liveness applies (Engine.liveness)."""
    return result_age_limit_s(settings, spec.interval_s, spec.timeout_s)


def is_problem(probe: ProbeResult) -> bool:
    """What "problems only" shows: anything but a fresh GREEN result."""
    return probe.status != "GREEN" or probe.stale


def worst_first(probes: list[ProbeResult]) -> list[ProbeResult]:
    """RED, YELLOW, no result yet, GREEN; stale before fresh; then by service id."""
    return sorted(probes, key=lambda p: (_ORDER[p.status], not p.stale, p.service_id))


def result_lines(result: Result) -> list[ResultLine]:
    """The lines of a result with their grades and parsed inline Markdown."""
    return [
        ResultLine(
            text=line.text,
            status=line.grade.value if line.grade else None,
            nodes=list(line_nodes(line.text)),
        )
        for line in result.lines
    ]


def _run_fields(result: HistoryRun) -> dict[str, Any]:
    """What a history point says about one run."""
    return {
        "collected_at_ms": result.collected_at_ms,
        "status": result.grade.value,
        "outcome": result.outcome,
        "duration_s": round(result.duration_s, 6),
    }


def probe_result(
    engine: Engine, service_id: str, at_ms: int, remote: Remote | None = None
) -> ProbeResult:
    """A probe and its newest result, as the page and the API show it; with a cluster,
    another shard's id from `remote` (what its owners answered)."""
    spec = engine.contexts[service_id].spec
    history = engine.store.history(service_id)
    newest = engine.store.newest(service_id)
    if newest is None and remote is not None:
        newest, history = _remote_result(engine, service_id, at_ms, remote)
        if newest is None and engine.topology.owner(service_id) in remote.silent:
            return _silent_shard(engine, service_id, spec)
    limit_s = stale_after_s(engine.settings, spec)
    age_s = max(0.0, (at_ms - newest.collected_at_ms) / 1000) if newest else None
    return ProbeResult(
        service_id=service_id,
        kind=spec.kind,
        description=engine.redact(spec.description),
        status=newest.grade.value if newest else None,
        collected_at_ms=newest.collected_at_ms if newest else None,
        age_s=round(age_s, 3) if age_s is not None else None,
        stale=age_s is not None and age_s > limit_s,
        stale_after_s=limit_s,
        interval_s=spec.interval_s,
        duration_s=round(newest.duration_s, 6) if newest else None,
        outcome=newest.outcome if newest else None,
        action_body=newest.action_body if newest else None,
        lines=result_lines(newest) if newest else [],
        history=[HistoryPoint(**_run_fields(r)) for r in history],
        links=_links(service_id),
    )


def _remote_result(
    engine: Engine, service_id: str, at_ms: int, remote: Remote
) -> tuple[Result | None, list[HistoryRun]]:
    """Another shard's result of `service_id`, else one this pod keeps during a reshard."""
    held = remote.held.get(service_id)
    if held is not None:
        return held
    kept = engine.store.grace_newest(service_id, at_ms)
    return kept, []


def _silent_shard(engine: Engine, service_id: str, spec: SpecBase) -> ProbeResult:
    """A probe of a shard none of whose replicas answered: no result, and a line saying so."""
    shard = engine.topology.owner(service_id)
    text = f"- shard {shard} did not answer: its pods hold this probe's results"
    limit_s = stale_after_s(engine.settings, spec)
    return ProbeResult(
        service_id=service_id,
        kind=spec.kind,
        description=engine.redact(spec.description),
        status=None,
        collected_at_ms=None,
        age_s=None,
        stale=False,
        stale_after_s=limit_s,
        interval_s=spec.interval_s,
        duration_s=None,
        outcome=None,
        action_body=text,
        lines=[ResultLine(text=text, status=None, nodes=list(line_nodes(text)))],
        history=[],
        links=_links(service_id),
    )


def _links(service_id: str) -> ProbeLinks:
    return ProbeLinks(
        document=f"/{service_id}",
        ui=f"{UI_PATH}/{service_id}",
        result=f"{RESULTS_PATH}/{service_id}",
        history=f"{RESULTS_PATH}/{service_id}/history",
    )


def all_results(engine: Engine, remote: Remote | None = None) -> ResultsResponse:
    """Every probe with its newest result, worst first (other shards' from `remote`)."""
    at_ms = now_ms()
    probes = [probe_result(engine, service_id, at_ms, remote) for service_id in engine.contexts]
    return ResultsResponse(
        service="zeroprobe", version=__version__, now_ms=at_ms, results=worst_first(probes)
    )


def model_response(model: BaseModel, status: int = 200) -> web.Response:
    """A pydantic model as the JSON body."""
    return web.Response(
        body=model.model_dump_json(exclude_none=isinstance(model, ErrorResponse)),
        status=status,
        content_type="application/json",
    )


def unknown_service(service_id: str) -> web.Response:
    """404 for an id no loaded spec has."""
    return model_response(
        ErrorResponse(error=f"unknown service id {service_id!r}", status=404), status=404
    )


class StatusApi:
    """Handlers of /api/v1/results, /api/v1/results/{service_id} and its /history."""

    def __init__(self, engine: Engine, cluster: Cluster | None = None) -> None:
        self._engine = engine
        self._cluster = cluster

    async def _remote(self, service_id: str | None = None) -> Remote | None:
        """With a cluster, the other shards' results (of one id: only when another owns it)."""
        if self._cluster is None:
            return None
        if service_id is not None and self._engine.store.newest(service_id) is not None:
            return None
        return await self._cluster.remote(service_id)

    async def results(self, request: web.Request) -> web.Response:
        """GET /api/v1/results: every probe, worst first."""
        return model_response(all_results(self._engine, await self._remote()))

    async def result(self, request: web.Request) -> web.Response:
        """GET /api/v1/results/{service_id}: one probe and its newest result."""
        service_id = request.match_info["service_id"]
        if not self._engine.knows(service_id):
            return unknown_service(service_id)
        remote = await self._remote(service_id)
        at_ms = now_ms()
        return model_response(
            ProbeResultResponse(
                now_ms=at_ms, result=probe_result(self._engine, service_id, at_ms, remote)
            )
        )

    async def history(self, request: web.Request) -> web.Response:
        """GET /api/v1/results/{service_id}/history: the last results, oldest first."""
        service_id = request.match_info["service_id"]
        if not self._engine.knows(service_id):
            return unknown_service(service_id)
        runs = self._engine.store.history(service_id)
        remote = await self._remote(service_id)
        if remote is not None and service_id in remote.held:
            runs = remote.held[service_id][1]
        entries = [HistoryEntry(**_run_fields(r), action_body=r.action_body) for r in runs]
        return model_response(
            HistoryResponse(service_id=service_id, now_ms=now_ms(), results=entries)
        )


def add_api_routes(
    router: web.UrlDispatcher, engine: Engine, cluster: Cluster | None = None
) -> None:
    """Register the JSON API (app.create_app wraps each handler: JSON errors, access control)."""
    api = StatusApi(engine, cluster)
    router.add_get(RESULTS_PATH, api.results)
    router.add_get(RESULTS_PATH + "/{service_id}", api.result)
    router.add_get(RESULTS_PATH + "/{service_id}/history", api.history)


NOTIFICATIONS_PATH = "/api/v1/notifications"


def notifications(notifier: Notifier | None) -> NotificationsResponse:
    """Each sink's health as the API answers it (the same rows as the page)."""
    if notifier is None:
        return NotificationsResponse(configured=False, outbox="memory", outbox_problem="", sinks=[])
    rows = notifier.health()
    return NotificationsResponse(
        configured=notifier.configured,
        outbox="disk" if notifier.outbox.durable else "memory",
        outbox_problem=notifier.outbox.degraded,
        sinks=[
            SinkStatus(
                name=row.name,
                type=row.type,
                state=row.state,
                detail=row.detail,
                pending=row.pending,
                oldest_age_s=round(row.oldest_age_s, 3) if row.oldest_age_s is not None else None,
                last_ok_ms=row.last_ok_ms,
                sent=row.sent,
                failed=row.failed,
                dropped=row.dropped,
            )
            for row in rows
        ],
    )


def add_notifications_route(router: web.UrlDispatcher, notifier: Notifier | None) -> None:
    """GET /api/v1/notifications (registered whether or not notifications are configured)."""

    async def notifications_handler(request: web.Request) -> web.Response:
        """GET /api/v1/notifications: each sink's health; never a URL."""
        return model_response(notifications(notifier))

    router.add_get(NOTIFICATIONS_PATH, notifications_handler)
