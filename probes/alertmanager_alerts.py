"""The active alerts of an Alertmanager, one line per alert group, coloured by severity.

`probe_alertmanager_alerts` reads `/api/v2/alerts` with the spec's matchers as `filter`
(`measure_alerts_reply`, pure); `grade_alertmanager_alerts` (pure) groups the alerts by
severity and the `group_by` labels:
`- [critical] HighErrorRate payments-api (firing 12m, 3 instances): Error rate above 5%`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probes.base import Kind, Observation, ProbeContext, reading_reply
from probes.errors import ProbeReplyError
from probes.http_client import HttpReply, request_timeout_s, status_line
from probes.lines import one_line, worst_first
from probes.times import format_age, parse_time_ms
from schemas.context_spec import AlertmanagerAlertsSpec
from schemas.grading import Grade, Line

ALERTS_PATH = "/api/v2/alerts"
SERVICE = "Alertmanager"
#: Annotations that may say what an alert is about, in order of preference.
SUMMARY_ANNOTATIONS = ("summary", "description", "message")
SUMMARY_CHARS = 200
NO_ALERTS = "- no active alerts"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as Alertmanager reports it."""

    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...] = ()
    starts_at_ms: int | None = None
    silenced: bool = False
    inhibited: bool = False
    fingerprint: str = ""

    def label(self, name: str) -> str:
        """The value of label `name`; empty when the alert lacks it."""
        return dict(self.labels).get(name, "")


@dataclass(frozen=True, slots=True)
class AlertsObservation(Observation):
    """The alerts Alertmanager returned, and when (for "firing 12m")."""

    alerts: tuple[Alert, ...]
    measured_at_ms: int


async def probe_alertmanager_alerts(
    spec: AlertmanagerAlertsSpec, ctx: ProbeContext
) -> AlertsObservation:
    """Read the alerts matching `spec.matchers` from the Alertmanager of `spec.connection`."""
    target = ctx.http.target(spec.connection, spec.bearer_token_env)
    params = [("filter", matcher) for matcher in spec.matchers]
    params += [
        ("active", "true"),
        ("unprocessed", "true"),
        ("silenced", _flag(spec.include_silenced)),
        ("inhibited", _flag(spec.include_inhibited)),
    ]
    reply = await ctx.http.request_json(
        target,
        "GET",
        ALERTS_PATH,
        service=SERVICE,
        timeout_s=request_timeout_s(spec.timeout_s),
        params=params,
    )
    with reading_reply(SERVICE):
        return measure_alerts_reply(reply, now_ms=time.time_ns() // 1_000_000)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def measure_alerts_reply(reply: HttpReply, *, now_ms: int) -> AlertsObservation:
    """Read a reply of /api/v2/alerts; ProbeReplyError for an error or an unreadable reply."""
    if reply.status == 400:
        # Alertmanager's words, e.g. "bad matcher format: ..." (the body is a JSON string).
        detail = reply.data if reply.is_json else reply.snippet
        if isinstance(detail, Mapping):
            detail = detail.get("message") or detail
        raise ProbeReplyError(f"{SERVICE} rejected the request: {one_line(str(detail))}")
    if reply.status != 200:
        raise ProbeReplyError(status_line(reply, SERVICE, ALERTS_PATH))
    if not reply.is_json or not isinstance(reply.data, list):
        raise ProbeReplyError(f"unreadable reply from {SERVICE}: not a JSON list of alerts")
    return AlertsObservation(
        alerts=tuple(_alert(item) for item in reply.data), measured_at_ms=now_ms
    )


def _alert(item: Any) -> Alert:
    if not isinstance(item, Mapping) or not isinstance(item.get("labels"), Mapping):
        raise ProbeReplyError(f"unreadable reply from {SERVICE}: an alert without labels")
    status = _mapping(item.get("status"))
    annotations = _mapping(item.get("annotations"))
    return Alert(
        labels=tuple(sorted((str(k), str(v)) for k, v in item["labels"].items())),
        annotations=tuple(sorted((str(k), str(v)) for k, v in annotations.items())),
        starts_at_ms=parse_time_ms(item.get("startsAt")),
        silenced=bool(status.get("silencedBy")),
        inhibited=bool(status.get("inhibitedBy")),
        fingerprint=str(item.get("fingerprint", "")),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _summary(alert: Alert) -> str:
    annotations = dict(alert.annotations)
    for name in SUMMARY_ANNOTATIONS:
        text = one_line(annotations.get(name, "")).strip()
        if text:
            return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"
    return ""


def grade_alertmanager_alerts(
    observation: AlertsObservation, spec: AlertmanagerAlertsSpec
) -> list[Line]:
    """One line per alert group (severity + `group_by` values + silenced/inhibited), worst
    first, then longest firing first. No alert left: GREEN `- no active alerts`."""
    alerts = [
        a
        for a in observation.alerts
        if (spec.include_silenced or not a.silenced) and (spec.include_inhibited or not a.inhibited)
    ]
    if not alerts:
        return [Line(NO_ALERTS, Grade.GREEN)]
    grades = {severity.lower(): grade for severity, grade in spec.grades.items()}
    groups: dict[tuple[str, tuple[str, ...], str], list[Alert]] = {}
    for alert in alerts:
        state = "silenced" if alert.silenced else "inhibited" if alert.inhibited else ""
        key = (
            alert.label(spec.severity_label),
            tuple(alert.label(name) for name in spec.group_by),
            state,
        )
        groups.setdefault(key, []).append(alert)

    graded: list[tuple[Line, float]] = []
    for (severity, values, state), members in groups.items():
        grade = grades.get(severity.lower(), Grade.YELLOW)
        known = [a.starts_at_ms for a in members if a.starts_at_ms is not None]
        started_ms = min(known) if known else None
        age = (
            f"firing {format_age((observation.measured_at_ms - started_ms) / 1000)}"
            if started_ms is not None
            else "firing"
        )
        count = f"{len(members)} instance{'' if len(members) == 1 else 's'}"
        details = ", ".join(part for part in (state, age, count) if part)
        first = min(members, key=lambda a: (a.starts_at_ms or math.inf, a.fingerprint, a.labels))
        names = " ".join(value for value in values if value)
        head = f"- [{severity or 'no severity'}] {names}".rstrip()
        summary = _summary(first)
        text = one_line(f"{head} ({details})" + (f": {summary}" if summary else ""))
        graded.append((Line(text, grade), float(started_ms) if started_ms else math.inf))
    return worst_first(graded, spec.max_lines, noun="alert groups")


# /liveness is about the Mongo-backed probes: an outage of this kind's target shows as a RED
# line of its own probe, not as a failing collector.
KIND = Kind(
    name="alertmanager_alerts",
    spec=AlertmanagerAlertsSpec,
    probe=probe_alertmanager_alerts,
    grade=grade_alertmanager_alerts,
    secret_env_fields=("bearer_token_env",),
)
