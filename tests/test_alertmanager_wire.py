"""alertmanager_alerts against a real Alertmanager (Debian's), with alerts POSTed to its API.

Each test labels its alerts `test="<its name>"` and matches on that label, so the tests share
one Alertmanager without seeing each other's alerts. Silences and inhibitions are the real
ones: a silence is created through /api/v2/silences, and the server's inhibit rule mutes
warnings of a service whose critical alert carries `inhibits="true"`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from schemas.grading import Grade, Line
from tests.conftest import AlertsSpecFactory, EngineFactory, run_against
from tests.servers import AlertmanagerServer, free_port, outage, rfc3339

SERVICE_ID = "test.am.alerts"  # the make_alerts_spec default
CONNECTION_VAR = "ZEROPROBE_CONNECTION_AM"  # its label "am"
SERVICE = "payments-api"


@pytest.fixture
def test_label(request: pytest.FixtureRequest) -> str:
    """This test's value of the `test` label."""
    return str(request.node.name)


def fired(
    test: str,
    alertname: str,
    severity: str | None,
    *,
    minutes_ago: float,
    summary: str = "",
    **labels: str,
) -> dict[str, Any]:
    """An alert for POST /api/v2/alerts that started `minutes_ago` (plus 10 s of margin)."""
    all_labels = {"alertname": alertname, "service": SERVICE, "test": test, **labels}
    if severity is not None:
        all_labels["severity"] = severity
    started = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago, seconds=10)
    return {
        "labels": all_labels,
        "annotations": {"summary": summary} if summary else {},
        "startsAt": rfc3339(started),
    }


async def test_one_line_per_alert_group_coloured_by_severity(
    alertmanager: AlertmanagerServer,
    make_engine: EngineFactory,
    make_alerts_spec: AlertsSpecFactory,
    test_label: str,
) -> None:
    summary = "Error rate above 5% for 10 minutes"
    alerts = [
        fired(test_label, "HighErrorRate", "critical", minutes_ago=12, summary=summary, pod=pod)
        for pod in ("a", "b", "c")
    ]
    alerts += [
        fired(test_label, "SlowRequests", "warning", minutes_ago=3, summary="p99 above 2s"),
        fired(test_label, "DiskFilling", "info", minutes_ago=45, summary="disk 80% full"),
        fired(test_label, "Unlabelled", None, minutes_ago=1),
    ]
    await asyncio.to_thread(alertmanager.post_alerts, alerts)

    result = await run_against(
        make_engine, make_alerts_spec, alertmanager.url, matchers=[f'test="{test_label}"']
    )

    assert list(result.lines) == [
        Line(
            f"- [critical] HighErrorRate {SERVICE} (firing 12m, 3 instances): {summary}", Grade.RED
        ),
        Line(
            f"- [info] DiskFilling {SERVICE} (firing 45m, 1 instance): disk 80% full", Grade.YELLOW
        ),
        Line(
            f"- [warning] SlowRequests {SERVICE} (firing 3m, 1 instance): p99 above 2s",
            Grade.YELLOW,
        ),
        Line(f"- [no severity] Unlabelled {SERVICE} (firing 1m, 1 instance)", Grade.YELLOW),
    ]
    assert result.grade is Grade.RED
    document = json.loads(result.document)[SERVICE_ID]
    assert document["status"] == "RED"
    assert document["messages"][0]["actionBody"].startswith("- [critical] HighErrorRate")


async def test_matchers_are_sent_as_filters(
    alertmanager: AlertmanagerServer,
    make_engine: EngineFactory,
    make_alerts_spec: AlertsSpecFactory,
    test_label: str,
) -> None:
    await asyncio.to_thread(
        alertmanager.post_alerts,
        [
            fired(test_label, "Paging", "critical", minutes_ago=2),
            fired(test_label, "Noise", "info", minutes_ago=2),
            fired(test_label, "Other", "warning", minutes_ago=2, service="billing"),
        ],
    )

    result = await run_against(
        make_engine,
        make_alerts_spec,
        alertmanager.url,
        matchers=[f'test="{test_label}"', 'severity=~"critical|warning"', f'service="{SERVICE}"'],
    )

    assert list(result.lines) == [
        Line(f"- [critical] Paging {SERVICE} (firing 2m, 1 instance)", Grade.RED)
    ]


async def test_custom_grades(
    alertmanager: AlertmanagerServer,
    make_engine: EngineFactory,
    make_alerts_spec: AlertsSpecFactory,
    test_label: str,
) -> None:
    await asyncio.to_thread(
        alertmanager.post_alerts,
        [
            fired(test_label, "Ticket", "ticket", minutes_ago=5),
            fired(test_label, "Fyi", "info", minutes_ago=6),
        ],
    )

    result = await run_against(
        make_engine,
        make_alerts_spec,
        alertmanager.url,
        matchers=[f'test="{test_label}"'],
        grades={"page": "RED", "ticket": "YELLOW", "info": "GREEN"},
    )

    assert list(result.lines) == [
        Line(f"- [ticket] Ticket {SERVICE} (firing 5m, 1 instance)", Grade.YELLOW),
        Line(f"- [info] Fyi {SERVICE} (firing 6m, 1 instance)", Grade.GREEN),
    ]
    assert result.grade is Grade.YELLOW


@pytest.mark.parametrize(
    ("muting", "include", "default", "included"),
    [
        (
            "silence",
            "include_silenced",
            [Line(f"- [warning] Loud {SERVICE} (firing 4m, 1 instance)", Grade.YELLOW)],
            [
                Line(f"- [critical] Muted {SERVICE} (silenced, firing 8m, 1 instance)", Grade.RED),
                Line(f"- [warning] Loud {SERVICE} (firing 4m, 1 instance)", Grade.YELLOW),
            ],
        ),
        (
            "inhibition",
            "include_inhibited",
            [Line(f"- [critical] Muted {SERVICE} (firing 8m, 1 instance)", Grade.RED)],
            [
                Line(f"- [critical] Muted {SERVICE} (firing 8m, 1 instance)", Grade.RED),
                Line(
                    f"- [warning] Loud {SERVICE} (inhibited, firing 4m, 1 instance)", Grade.YELLOW
                ),
            ],
        ),
    ],
    ids=["silenced", "inhibited"],
)
async def test_muted_alerts_are_excluded_unless_included(
    alertmanager: AlertmanagerServer,
    make_engine: EngineFactory,
    make_alerts_spec: AlertsSpecFactory,
    test_label: str,
    *,
    muting: str,
    include: str,
    default: list[Line],
    included: list[Line],
) -> None:
    # A real silence of the critical alert, or the server's inhibit rule: a critical alert
    # labelled inhibits="true" mutes the warnings of its service.
    extra = {"inhibits": "true"} if muting == "inhibition" else {}
    await asyncio.to_thread(
        alertmanager.post_alerts,
        [
            fired(test_label, "Muted", "critical", minutes_ago=8, **extra),
            fired(test_label, "Loud", "warning", minutes_ago=4),
        ],
    )
    if muting == "silence":
        await asyncio.to_thread(alertmanager.silence, {"test": test_label, "alertname": "Muted"})
    matcher = f'test="{test_label}"'
    key = "silencedBy" if muting == "silence" else "inhibitedBy"
    await asyncio.to_thread(
        alertmanager.wait_for_alerts,
        matcher,
        until=lambda alerts: any(a["status"][key] for a in alerts),
    )

    left_out = await run_against(
        make_engine, make_alerts_spec, alertmanager.url, matchers=[matcher]
    )
    kept = await run_against(
        make_engine, make_alerts_spec, alertmanager.url, matchers=[matcher], **{include: True}
    )

    assert list(left_out.lines) == default
    assert list(kept.lines) == included


async def test_no_active_alert_is_green(
    alertmanager: AlertmanagerServer,
    make_engine: EngineFactory,
    make_alerts_spec: AlertsSpecFactory,
    test_label: str,
) -> None:
    result = await run_against(
        make_engine, make_alerts_spec, alertmanager.url, matchers=[f'test="{test_label}"']
    )

    assert list(result.lines) == [Line("- no active alerts", Grade.GREEN)]
    assert result.grade is Grade.GREEN
    assert result.outcome == "success"


async def test_a_matcher_alertmanager_refuses_is_red_with_its_own_words(
    alertmanager: AlertmanagerServer,
    make_engine: EngineFactory,
    make_alerts_spec: AlertsSpecFactory,
) -> None:
    matcher = 'service=~"(unclosed"'
    status, said = await asyncio.to_thread(alertmanager.alerts, matcher)
    assert status == 400

    result = await run_against(make_engine, make_alerts_spec, alertmanager.url, matchers=[matcher])

    assert list(result.lines) == [Line(f"- Alertmanager rejected the request: {said}", Grade.RED)]
    assert result.outcome == "error"


async def test_stopped_server_is_red_and_a_restarted_one_recovers(
    tmp_path: Path, make_engine: EngineFactory, make_alerts_spec: AlertsSpecFactory
) -> None:
    server = AlertmanagerServer(tmp_path, free_port())
    engine = make_engine([make_alerts_spec()], {CONNECTION_VAR: server.url})

    healthy, stopped, recovered = await outage(engine, server)

    assert list(healthy.lines) == [Line("- no active alerts", Grade.GREEN)]
    assert list(stopped.lines) == [
        Line(
            f"- cannot connect to Alertmanager at 127.0.0.1:{server.port}: connection refused",
            Grade.RED,
        )
    ]
    assert stopped.reached_target is False
    assert list(recovered.lines) == [Line("- no active alerts", Grade.GREEN)]
