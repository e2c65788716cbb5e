"""alertmanager_alerts without a server: grouping, severities, silences, ages, reply reading.

The contract (README "Alertmanager alerts"): one line per alert group,
`- [critical] HighErrorRate payments-api (firing 12m, 3 instances): <summary>`; critical RED,
warning YELLOW, any other severity YELLOW unless `grades` says otherwise; silenced and
inhibited alerts left out unless included; no alert: GREEN `- no active alerts`.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from probes.alertmanager_alerts import (
    Alert,
    AlertsObservation,
    grade_alertmanager_alerts,
    measure_alerts_reply,
)
from probes.errors import ProbeReplyError
from probes.http_client import HttpReply
from probes.times import format_age, parse_time_ms
from schemas.grading import Grade, Line
from tests.conftest import AlertsSpecFactory

NOW_MS = 1_800_000_000_000
MINUTE_MS = 60_000


def alert(
    name: str = "HighErrorRate",
    severity: str | None = "critical",
    *,
    minutes: float = 12,
    summary: str = "",
    silenced: bool = False,
    inhibited: bool = False,
    **labels: str,
) -> Alert:
    all_labels = {"alertname": name, "service": "payments-api", **labels}
    if severity is not None:
        all_labels["severity"] = severity
    return Alert(
        labels=tuple(sorted(all_labels.items())),
        annotations=(("summary", summary),) if summary else (),
        starts_at_ms=NOW_MS - round(minutes * MINUTE_MS),
        silenced=silenced,
        inhibited=inhibited,
        fingerprint=f"{name}{sorted(labels.items())}",
    )


def observe(*alerts: Alert) -> AlertsObservation:
    return AlertsObservation(alerts=alerts, measured_at_ms=NOW_MS)


def test_alerts_of_one_group_make_one_line(make_alerts_spec: AlertsSpecFactory) -> None:
    obs = observe(
        alert(minutes=12.5, summary="Error rate above 5%", instance="a"),
        alert(minutes=3, summary="Error rate above 5%", instance="b"),
        alert(minutes=7, summary="Error rate above 5%", instance="c"),
    )

    assert grade_alertmanager_alerts(obs, make_alerts_spec()) == [
        Line(
            "- [critical] HighErrorRate payments-api (firing 12m, 3 instances): "
            "Error rate above 5%",
            Grade.RED,
        )
    ]


def test_no_alert_is_green(make_alerts_spec: AlertsSpecFactory) -> None:
    assert grade_alertmanager_alerts(observe(), make_alerts_spec()) == [
        Line("- no active alerts", Grade.GREEN)
    ]


@pytest.mark.parametrize(
    ("severity", "shown", "grade"),
    [
        ("critical", "critical", Grade.RED),
        ("warning", "warning", Grade.YELLOW),
        ("info", "info", Grade.YELLOW),
        ("page", "page", Grade.YELLOW),
        ("CRITICAL", "CRITICAL", Grade.RED),
        (None, "no severity", Grade.YELLOW),
    ],
    ids=["critical", "warning", "info", "unknown", "upper-case", "none"],
)
def test_default_severity_grades(
    make_alerts_spec: AlertsSpecFactory, severity: str | None, shown: str, grade: Grade
) -> None:
    obs = observe(alert("Disk", severity, minutes=1))

    assert grade_alertmanager_alerts(obs, make_alerts_spec()) == [
        Line(f"- [{shown}] Disk payments-api (firing 1m, 1 instance)", grade)
    ]


def test_custom_grades_replace_the_defaults(make_alerts_spec: AlertsSpecFactory) -> None:
    spec = make_alerts_spec(grades={"page": "RED", "ticket": "yellow", "info": "GREEN"})
    obs = observe(
        alert("A", "info"), alert("B", "ticket"), alert("C", "page"), alert("D", "critical")
    )

    assert {
        line.text.split("]")[0]: line.grade for line in grade_alertmanager_alerts(obs, spec)
    } == {
        "- [page": Grade.RED,
        "- [ticket": Grade.YELLOW,
        "- [critical": Grade.YELLOW,
        "- [info": Grade.GREEN,
    }


def test_severity_label_is_configurable(make_alerts_spec: AlertsSpecFactory) -> None:
    spec = make_alerts_spec(severity_label="priority", grades={"p1": "RED"})
    obs = observe(alert("Down", None, priority="p1", minutes=0.5))

    assert grade_alertmanager_alerts(obs, spec) == [
        Line("- [p1] Down payments-api (firing 30s, 1 instance)", Grade.RED)
    ]


def test_groups_worst_first_then_longest_firing(make_alerts_spec: AlertsSpecFactory) -> None:
    obs = observe(
        alert("Slow", "warning", minutes=90),
        alert("Errors", "critical", minutes=5),
        alert("Down", "critical", minutes=60 * 26),
        alert("Noise", "info", minutes=200),
    )

    assert [line.text for line in grade_alertmanager_alerts(obs, make_alerts_spec())] == [
        "- [critical] Down payments-api (firing 1d2h, 1 instance)",
        "- [critical] Errors payments-api (firing 5m, 1 instance)",
        "- [info] Noise payments-api (firing 3h20m, 1 instance)",
        "- [warning] Slow payments-api (firing 1h30m, 1 instance)",
    ]


def test_group_by_labels_split_groups(make_alerts_spec: AlertsSpecFactory) -> None:
    spec = make_alerts_spec(group_by=["alertname", "cluster"])
    obs = observe(
        alert(cluster="eu", instance="a"),
        alert(cluster="eu", instance="b"),
        alert(cluster="us", instance="c"),
    )

    assert [line.text for line in grade_alertmanager_alerts(obs, spec)] == [
        "- [critical] HighErrorRate eu (firing 12m, 2 instances)",
        "- [critical] HighErrorRate us (firing 12m, 1 instance)",
    ]


def test_silenced_and_inhibited_alerts_are_left_out(make_alerts_spec: AlertsSpecFactory) -> None:
    obs = observe(alert("Muted", silenced=True), alert("Hidden", "warning", inhibited=True))

    assert grade_alertmanager_alerts(obs, make_alerts_spec()) == [
        Line("- no active alerts", Grade.GREEN)
    ]


def test_silenced_and_inhibited_alerts_on_request_labelled(
    make_alerts_spec: AlertsSpecFactory,
) -> None:
    spec = make_alerts_spec(include_silenced=True, include_inhibited=True)
    obs = observe(
        alert("Muted", silenced=True, instance="a"),
        alert("Muted", instance="b"),
        alert("Hidden", "warning", inhibited=True),
    )

    assert grade_alertmanager_alerts(obs, spec) == [
        Line("- [critical] Muted payments-api (firing 12m, 1 instance)", Grade.RED),
        Line("- [critical] Muted payments-api (silenced, firing 12m, 1 instance)", Grade.RED),
        Line("- [warning] Hidden payments-api (inhibited, firing 12m, 1 instance)", Grade.YELLOW),
    ]


def test_summary_falls_back_to_description_and_stays_on_one_line(
    make_alerts_spec: AlertsSpecFactory,
) -> None:
    described = Alert(
        labels=(("alertname", "X"), ("service", "s"), ("severity", "warning")),
        annotations=(("description", "first line\nsecond line"),),
        starts_at_ms=None,
    )

    assert grade_alertmanager_alerts(observe(described), make_alerts_spec()) == [
        Line("- [warning] X s (firing, 1 instance): first line second line", Grade.YELLOW)
    ]


def test_many_groups_are_capped(make_alerts_spec: AlertsSpecFactory) -> None:
    spec = make_alerts_spec(max_lines=2)
    obs = observe(
        *(alert(f"A{i}", "critical" if i < 3 else "warning", minutes=i) for i in range(6))
    )

    lines = grade_alertmanager_alerts(obs, spec)

    assert [line.grade for line in lines] == [Grade.RED, Grade.RED, None]
    assert lines[-1].text == "- …and 4 more alert groups (1 RED, 3 YELLOW)"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (12 * 60 + 59, "12m"),
        (3600, "1h"),
        (3600 + 5 * 60, "1h5m"),
        (86400, "1d"),
        (2 * 86400 + 4 * 3600 + 59, "2d4h"),
    ],
)
def test_firing_age(seconds: float, text: str) -> None:
    assert format_age(seconds) == text


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("2027-01-15T08:00:00.000Z", 1_800_000_000_000),
        ("2027-01-15T08:00:00.123456789Z", 1_800_000_000_123),
        ("2027-01-15T09:00:00+01:00", 1_800_000_000_000),
        ("2027-01-15T08:00:00Z", 1_800_000_000_000),
        ("0001-01-01T00:00:00Z", None),
        ("yesterday", None),
        (None, None),
    ],
)
def test_alert_times(value: Any, ms: int | None) -> None:
    assert parse_time_ms(value) == ms


def test_reply_is_read_into_alerts() -> None:
    body = [
        {
            "labels": {"alertname": "A", "severity": "critical"},
            "annotations": {"summary": "s"},
            "startsAt": "2027-01-15T08:00:00.000Z",
            "status": {"state": "suppressed", "silencedBy": ["x"], "inhibitedBy": []},
            "fingerprint": "f1",
        }
    ]

    obs = measure_alerts_reply(HttpReply(200, "OK", body, is_json=True), now_ms=NOW_MS)

    assert obs == AlertsObservation(
        alerts=(
            Alert(
                labels=(("alertname", "A"), ("severity", "critical")),
                annotations=(("summary", "s"),),
                starts_at_ms=1_800_000_000_000,
                silenced=True,
                inhibited=False,
                fingerprint="f1",
            ),
        ),
        measured_at_ms=NOW_MS,
    )


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            HttpReply(400, "Bad Request", "bad matcher format: foo", is_json=True),
            "Alertmanager rejected the request: bad matcher format: foo",
        ),
        (
            HttpReply(404, "Not Found", snippet="404 page not found"),
            "no Alertmanager API at /api/v2/alerts (HTTP 404 Not Found): "
            "check the connection's base URL",
        ),
        (
            HttpReply(200, "OK", {"alerts": []}, is_json=True),
            "unreadable reply from Alertmanager: not a JSON list of alerts",
        ),
        (
            HttpReply(200, "OK", [{"annotations": {}}], is_json=True),
            "unreadable reply from Alertmanager: an alert without labels",
        ),
    ],
    ids=["400", "404", "not-a-list", "no-labels"],
)
def test_error_replies_become_plain_lines(reply: HttpReply, message: str) -> None:
    with pytest.raises(ProbeReplyError) as raised:
        measure_alerts_reply(reply, now_ms=NOW_MS)
    assert str(raised.value) == message


def test_spec_defaults(make_alerts_spec: AlertsSpecFactory) -> None:
    spec = make_alerts_spec()

    assert spec.matchers == []
    assert spec.severity_label == "severity"
    assert spec.grades == {"critical": Grade.RED, "warning": Grade.YELLOW}
    assert spec.group_by == ["alertname", "service"]
    assert spec.include_silenced is False
    assert spec.include_inhibited is False


@pytest.mark.parametrize(
    ("fields", "location", "message"),
    [
        ({"matchers": ['service="a"', "service: a"]}, ("matchers", 1), "is not a matcher"),
        ({"grades": {"critical": "RED", "Critical": "YELLOW"}}, ("grades",), "name the same"),
        ({"grades": {"critical": "purple"}}, ("grades", "critical"), "'GREEN', 'YELLOW' or 'RED'"),
        ({"group_by": ["alertname", "a-b"]}, ("group_by", 1), "is not a label name"),
        ({"severity_label": "sev.level"}, ("severity_label",), "is not a label name"),
    ],
    ids=["matcher", "grades-case", "grade-colour", "group-by", "severity-label"],
)
def test_spec_errors_are_located_on_their_field(
    make_alerts_spec: AlertsSpecFactory,
    fields: dict[str, Any],
    location: tuple[str | int, ...],
    message: str,
) -> None:
    with pytest.raises(ValidationError) as raised:
        make_alerts_spec(**fields)
    (error,) = raised.value.errors()
    assert error["loc"] == location
    assert message in error["msg"]


@pytest.mark.parametrize(
    "matcher",
    [
        'service="payments"',
        'severity=~"critical|warning"',
        'env!="dev"',
        'team!~"ops.*"',
        "service=payments",
        ' service = "a b" ',
        'msg="say \\"hi\\""',
    ],
)
def test_matchers_alertmanager_accepts_are_valid(
    make_alerts_spec: AlertsSpecFactory, matcher: str
) -> None:
    assert make_alerts_spec(matchers=[matcher]).matchers == [matcher]
