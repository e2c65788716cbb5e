"""Alerts pushed to Debian's real Alertmanager (on 127.0.0.1), which routes them after 1 s to
a webhook receiver of the test: what on-call people would be sent. Firing, deduplication of
repeated pushes, a change of severity, resolution and the watchdog."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.grading import Grade
from tests.notify_fakes import FakeReceiver, RoutingAlertmanager, notifications_for
from tests.notify_support import PAGE_URL, harness


@pytest.fixture(scope="module")
def am_hook() -> Iterator[FakeReceiver]:
    receiver = FakeReceiver("webhook").start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="module")
def am(
    am_hook: FakeReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RoutingAlertmanager]:
    with RoutingAlertmanager(tmp_path_factory.mktemp("am"), am_hook.url) as server:
        yield server


def am_yaml(am: RoutingAlertmanager, resend: str = "1s") -> str:
    return f"alertmanager:\n  urls: [{am.url}]\n  resend_interval: {resend}\n"


async def alerts(
    am: RoutingAlertmanager, until: Callable[[list[dict[str, Any]]], bool], *filters: str
) -> list[dict[str, Any]]:
    return await asyncio.to_thread(am.wait_for_alerts, *filters, until=until)


async def hook_notes(
    hook: FakeReceiver, service_id: str, until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    await asyncio.to_thread(
        hook.wait_for, lambda _: until(notifications_for(hook, service_id)), 20.0
    )
    return notifications_for(hook, service_id)


def parse(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))


async def test_a_red_probe_is_one_alert_however_often_it_is_pushed(
    tmp_path: Path, am: RoutingAlertmanager, am_hook: FakeReceiver
) -> None:
    sid = "am.fire"
    async with harness(
        tmp_path, am_yaml(am), {}, [sid], spec_fields={"labels": {"team": "payments"}}
    ) as h:
        await h.set(sid, Grade.RED, "- 5xx ratio 0.07")
        (alert,) = await alerts(am, lambda a: len(a) == 1, f'service_id="{sid}"')
        assert alert["labels"] == {
            "alertname": "ZeroprobeProbe",
            "service_id": sid,
            "severity": "critical",
            "kind": "scripted",
            "team": "payments",
        }
        annotations = alert["annotations"]
        assert annotations["summary"] == f"{sid} is RED: 5xx ratio 0.07"
        assert annotations["action_body"] == "- 5xx ratio 0.07"
        assert annotations["runbook_url"] == f"{PAGE_URL}/ui/{sid}"
        assert alert["generatorURL"] == f"{PAGE_URL}/ui/{sid}"
        # endsAt: now + 4 x max(interval 60 s, resend 1 s), as Prometheus does.
        left_s = (parse(alert["endsAt"]) - dt.datetime.now(dt.UTC)).total_seconds()
        assert 230 <= left_s <= 241
        notes = await hook_notes(am_hook, sid, lambda n: len(n) >= 1)
        # Pushed every second for four more seconds: still one notification.
        await asyncio.sleep(4)
        (_, _, stats) = next(h.notifier.sink_stats())
        assert stats.sent >= 4
    notes = notifications_for(am_hook, sid)
    assert [n["status"] for n in notes] == ["firing"]


async def test_the_watchdog_always_fires(tmp_path: Path, am: RoutingAlertmanager) -> None:
    async with harness(tmp_path, am_yaml(am), {}, ["am.watchdog"]):
        (watchdog,) = await alerts(am, lambda a: len(a) == 1, 'alertname="ZeroprobeWatchdog"')
    assert watchdog["labels"] == {"alertname": "ZeroprobeWatchdog", "severity": "none"}
    assert watchdog["status"]["state"] == "active"


async def test_a_change_of_severity_resolves_the_old_alert(
    tmp_path: Path, am: RoutingAlertmanager, am_hook: FakeReceiver
) -> None:
    sid = "am.escalate"
    async with harness(tmp_path, am_yaml(am), {}, [sid]) as h:
        await h.set(sid, Grade.YELLOW)
        (warning,) = await alerts(am, lambda a: len(a) == 1, f'service_id="{sid}"')
        assert warning["labels"]["severity"] == "warning"
        await hook_notes(am_hook, sid, lambda n: len(n) == 1)  # on-call heard of it
        await h.set(sid, Grade.RED)
        await alerts(
            am,
            lambda a: [x["labels"]["severity"] for x in a] == ["critical"],
            f'service_id="{sid}"',
        )
        notes = await hook_notes(
            am_hook,
            sid,
            lambda n: (
                any(x["status"] == "resolved" for x in n)
                and any(x["commonLabels"]["severity"] == "critical" for x in n)
            ),
        )
    by_severity = {(n["commonLabels"]["severity"], n["status"]) for n in notes}
    assert by_severity == {("warning", "firing"), ("warning", "resolved"), ("critical", "firing")}


async def test_a_recovery_resolves_the_alert(
    tmp_path: Path, am: RoutingAlertmanager, am_hook: FakeReceiver
) -> None:
    sid = "am.recover"
    async with harness(tmp_path, am_yaml(am), {}, [sid]) as h:
        await h.set(sid, Grade.RED)
        await alerts(am, lambda a: len(a) == 1, f'service_id="{sid}"')
        await hook_notes(am_hook, sid, lambda n: len(n) == 1)
        await h.set(sid, Grade.GREEN)
        await alerts(am, lambda a: a == [], f'service_id="{sid}"')
        notes = await hook_notes(
            am_hook, sid, lambda n: [x["status"] for x in n][-1:] == ["resolved"]
        )
    (resolved,) = notes[-1]["alerts"]
    # endsAt is the recovery, not the 4-interval horizon.
    assert parse(resolved["endsAt"]) <= dt.datetime.now(dt.UTC)


async def test_an_alert_firing_before_a_restart_is_resolved_after_it(
    tmp_path: Path, am: RoutingAlertmanager
) -> None:
    sid = "am.restart"
    async with harness(tmp_path, am_yaml(am), {}, [sid]) as h:
        await h.set(sid, Grade.RED)
        await alerts(am, lambda a: len(a) == 1, f'service_id="{sid}"')
    # Down; the probe recovers meanwhile; the first result after the restart is GREEN.
    async with harness(tmp_path, am_yaml(am), {}, [sid]) as h:
        await h.set(sid, Grade.GREEN)
        await alerts(am, lambda a: a == [], f'service_id="{sid}"')


async def test_an_unreachable_alertmanager_is_retried_and_shown(tmp_path: Path) -> None:
    yaml = "alertmanager:\n  urls: [http://127.0.0.1:9]\n  resend_interval: 2s\n"
    async with harness(tmp_path, yaml, {}, ["am.down"]) as h:
        await h.set("am.down", Grade.RED)
        await asyncio.sleep(1.5)
        (health,) = h.notifier.health()
        assert health.state == "failing"
        assert health.detail == "127.0.0.1:9: cannot connect: Connection refused"
        (_, _, stats) = next(h.notifier.sink_stats())
        assert stats.retried >= 2  # sooner than the resend while it fails
