"""The JSON API behind the status page (`/api/v1/...`) and the bodies every endpoint shares.

The handlers build their answers from these models, and `/openapi.json` publishes the models'
JSON Schema, so the published schema is the one the answers are checked against.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["GREEN", "YELLOW", "RED"]
#: Tags a line's inline Markdown may produce; anything else is reduced to its text.
InlineTag = Literal["code", "strong", "em", "s", "a", "br"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InlineElement(_Strict):
    """An element of a line's inline Markdown; `href` only on `a`, and only http(s) or mailto."""

    tag: InlineTag
    href: str | None = None
    children: list[str | InlineElement] = Field(default_factory=list)


class ResultLine(_Strict):
    """One line of the actionBody: its Markdown text, its own grade, and the text parsed."""

    text: str = Field(description="The line as it appears in actionBody, e.g. '- Primary ...'.")
    status: Status | None = Field(description="The line's grade; null when listed but not graded.")
    nodes: list[str | InlineElement] = Field(
        description="The line's inline Markdown (after the '- ') as text and allowed elements: "
        "the status page builds its DOM from these, never from HTML."
    )


class HistoryPoint(_Strict):
    """One past run, as the history strip shows it."""

    collected_at_ms: int = Field(ge=0, description="Epoch milliseconds of the collection.")
    status: Status
    outcome: str = Field(description="success (measured), error or timeout.")
    duration_s: float = Field(ge=0)


class HistoryEntry(HistoryPoint):
    """One past run with its whole actionBody."""

    action_body: str


class ProbeLinks(_Strict):
    """Where to find more about one probe."""

    document: str = Field(description="The Zero Problem document: PUT or GET.")
    ui: str = Field(description="The detail page.")
    result: str = Field(description="This result alone, as JSON.")
    history: str = Field(description="The last results, as JSON.")


class ProbeResult(_Strict):
    """A probe and its newest result (every result field is null before the first run)."""

    service_id: str
    kind: str
    description: str
    status: Status | None
    collected_at_ms: int | None = Field(ge=0)
    age_s: float | None = Field(ge=0, description="Seconds since collection, at `now_ms`.")
    stale: bool = Field(description="Older than `stale_after_s`: /liveness fails on it too.")
    stale_after_s: float = Field(gt=0)
    interval_s: float = Field(gt=0)
    duration_s: float | None = Field(ge=0)
    outcome: str | None
    action_body: str | None = Field(description="The actionBody Markdown of the newest result.")
    lines: list[ResultLine]
    history: list[HistoryPoint] = Field(description="The last results, oldest first (up to 60).")
    links: ProbeLinks


class ResultsResponse(_Strict):
    """GET /api/v1/results: every probe, worst first (RED, YELLOW, no result yet, GREEN)."""

    service: Literal["zeroprobe"]
    version: str
    now_ms: int = Field(ge=0, description="The server's clock, epoch milliseconds.")
    results: list[ProbeResult]


class ProbeResultResponse(_Strict):
    """GET /api/v1/results/{service_id}: one probe and its newest result."""

    now_ms: int = Field(ge=0)
    result: ProbeResult


class HistoryResponse(_Strict):
    """GET /api/v1/results/{service_id}/history: the last results, oldest first."""

    service_id: str
    now_ms: int = Field(ge=0)
    results: list[HistoryEntry]


class ErrorResponse(BaseModel):
    """Every error body: 404 unknown id or path, 405, 413, 503 no result yet."""

    model_config = ConfigDict(extra="forbid")

    error: str
    status: int = Field(ge=400, le=599)
    retry_after_s: int | None = Field(
        default=None, ge=1, description="With 503 before the first result: seconds to wait."
    )


class HealthCheck(BaseModel):
    """One named check of a health endpoint and, when it fails, why."""

    model_config = ConfigDict(extra="forbid")

    name: str
    ok: bool
    reason: str | None = None


class HealthResponse(BaseModel):
    """The body of /liveness, /livez and /readyz (200 when every check is ok, else 503)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "failing"]
    checks: list[HealthCheck]


class SinkStatus(_Strict):
    """One notification sink or Alertmanager: its health, never its URL."""

    name: str = Field(description="The sink's name; an Alertmanager is alertmanager-<index>.")
    type: Literal["webhook", "slack", "discord", "apprise", "alertmanager"]
    state: Literal["ok", "failing", "no URL"]
    detail: str = Field(
        description="Why it fails (the last error, scrubbed of secrets), or an Alertmanager's "
        "host:port and how many alerts it was sent."
    )
    pending: int = Field(
        description="Transitions waiting (Alertmanager: alerts of a failing push)."
    )
    oldest_age_s: float | None = Field(description="Age of the oldest waiting transition.")
    last_ok_ms: int | None = Field(description="Epoch ms of the last delivery; null: none yet.")
    sent: int
    failed: int = Field(description="Messages refused for good (a 4xx other than 429).")
    dropped: int = Field(description="Messages dropped because older than max_age.")


class NotificationsResponse(_Strict):
    """GET /api/v1/notifications: where colour changes go, and how that goes."""

    configured: bool = Field(description="False when zeroprobe runs without a notifiers file.")
    outbox: Literal["disk", "memory"] = Field(
        description="Where pending messages and last notified colours are kept."
    )
    outbox_problem: str = Field(description="Why the outbox is in memory only, when it is.")
    sinks: list[SinkStatus]
