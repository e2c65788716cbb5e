"""Transitions, the outbox and the webhook sink: what is sent, when it is sent again, and
what survives a restart. Receivers are fakes on 127.0.0.1 (tests/notify_fakes.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from schemas.grading import Grade
from tests.notify_fakes import CLOSE, HANG, FakeReceiver, Received, status
from tests.notify_support import (
    PAGE_URL,
    eventually,
    harness,
    webhook_receiver,  # noqa: F401 - the `hook` fixture
)
from zeroprobe.notify.delivery import backoff_s, judge, retry_after_s

HOOK_VAR = "ONCALL_HOOK_URL"


def webhook_yaml(*, coalesce: str = "200ms", extra: str = "", max_age: str = "1h") -> str:
    return (
        f"coalesce: {coalesce}\n"
        f"max_age: {max_age}\n"
        "sinks:\n"
        "  - name: oncall\n"
        "    type: webhook\n"
        f"    url_env: {HOOK_VAR}\n"
        "    timeout: 1s\n"
        f"{extra}"
    )


def count(n: int) -> object:
    return lambda got: len([r for r in got if r.answered == "ok"]) >= n


async def wait_ok(receiver: FakeReceiver, n: int, timeout_s: float = 15.0) -> list[Received]:
    return await asyncio.to_thread(
        receiver.wait_for, lambda got: len([r for r in got if r.answered == "ok"]) >= n, timeout_s
    )


def transitions_of(receiver: FakeReceiver) -> list[dict[str, object]]:
    return [t for body in receiver.delivered() for t in body["transitions"]]


# Transitions ---------------------------------------------------------------------------------


async def test_a_change_to_red_and_the_recovery_are_two_messages(
    tmp_path: Path, hook: FakeReceiver
) -> None:
    async with harness(tmp_path, webhook_yaml(), {HOOK_VAR: hook.url}) as h:
        await h.set("payments.api", Grade.GREEN)  # first ever, GREEN: nothing to say
        await h.set("payments.api", Grade.RED, "- 5xx ratio 0.07")
        await wait_ok(hook, 1)
        await h.set("payments.api", Grade.RED)  # still RED: nothing new
        await h.set("payments.api", Grade.GREEN)
        await wait_ok(hook, 2)
        await asyncio.sleep(0.5)
    bodies = hook.delivered()
    assert len(bodies) == 2
    first, second = bodies
    assert first["version"] == "1"
    assert first["counts"] == {"RED": 1, "YELLOW": 0, "GREEN": 0}
    (red,) = first["transitions"]
    assert red["service_id"] == "payments.api"
    assert (red["from"], red["to"]) == (None, "RED")
    assert red["lines"] == ["- 5xx ratio 0.07"]
    assert red["summary"] == "5xx ratio 0.07"
    assert red["url"] == f"{PAGE_URL}/ui/payments.api"
    (green,) = second["transitions"]
    assert (green["from"], green["to"]) == ("RED", "GREEN")
    assert first["event_id"] != second["event_id"]
    assert red["event_id"] != green["event_id"]
    # The header carries the message's event_id for receivers that dedupe on a header.
    assert hook.got()[0].headers["Idempotency-Key"] == first["event_id"]


async def test_damping_decides_what_is_published_and_so_what_is_notified(
    tmp_path: Path, hook: FakeReceiver
) -> None:
    async with harness(
        tmp_path, webhook_yaml(), {HOOK_VAR: hook.url}, spec_fields={"confirm": 3}
    ) as h:
        await h.set("payments.api", Grade.GREEN)
        await h.set("payments.api", Grade.RED)
        await h.set("payments.api", Grade.RED)
        await h.set("payments.api", Grade.GREEN)  # the flap is cancelled
        await h.settle()
        await asyncio.sleep(0.5)
        assert hook.got() == []
        for _ in range(3):
            await h.set("payments.api", Grade.RED)
        await wait_ok(hook, 1)
    assert [t["to"] for t in transitions_of(hook)] == ["RED"]


async def test_min_status_and_match_choose_the_transitions_of_a_sink(
    tmp_path: Path, hook: FakeReceiver
) -> None:
    yaml = webhook_yaml(extra='    min_status: RED\n    match: ["payments.*"]\n')
    ids = ("payments.api", "orders.api")
    async with harness(tmp_path, yaml, {HOOK_VAR: hook.url}, ids) as h:
        await h.set("payments.api", Grade.YELLOW)  # below RED: not for this sink
        await h.set("orders.api", Grade.RED)  # another id: not for this sink
        await h.set("payments.api", Grade.RED)
        await wait_ok(hook, 1)
        await h.set("payments.api", Grade.YELLOW)  # from RED: the sink hears it calm down
        await wait_ok(hook, 2)
        await h.set("payments.api", Grade.GREEN)  # YELLOW -> GREEN: below RED on both sides
        await h.settle()
        await asyncio.sleep(0.5)
    assert [(t["service_id"], t["from"], t["to"]) for t in transitions_of(hook)] == [
        ("payments.api", "YELLOW", "RED"),
        ("payments.api", "RED", "YELLOW"),
    ]


async def test_transitions_within_the_window_are_one_message(
    tmp_path: Path, hook: FakeReceiver
) -> None:
    ids = [f"svc.{n}" for n in range(20)]
    async with harness(tmp_path, webhook_yaml(coalesce="1s"), {HOOK_VAR: hook.url}, ids) as h:
        await h.set_all(ids[:10], Grade.RED)
        await asyncio.sleep(0.3)
        await h.set_all(ids[10:], Grade.YELLOW)
        await wait_ok(hook, 1)
        await asyncio.sleep(1.5)
    (body,) = hook.delivered()
    assert body["counts"] == {"RED": 10, "YELLOW": 10, "GREEN": 0}
    assert body["headline"] == "zeroprobe: 10 RED, 10 YELLOW"


# Retries --------------------------------------------------------------------------------------


async def test_429_waits_for_retry_after_then_delivers_once(
    tmp_path: Path, hook: FakeReceiver
) -> None:
    hook.then(status(429, retry_after_s=1))
    async with harness(tmp_path, webhook_yaml(), {HOOK_VAR: hook.url}) as h:
        await h.set("payments.api", Grade.RED)
        got = await wait_ok(hook, 1)
        _, _, oncall = next(h.notifier.sink_stats())
        await eventually(lambda: oncall.sent == 1)
        assert (oncall.retried, oncall.failed) == (1, 0)
    first, second = got
    assert first.answered == "429"
    # Retry-After: 1 was honoured (the backoff alone would retry after 0.05 s).
    assert second.at - first.at >= 0.95
    assert first.body["event_id"] == second.body["event_id"]


@pytest.mark.parametrize(
    "trouble",
    [status(500), status(503), HANG, CLOSE],
    ids=["500", "503", "hang", "connection-closed"],
)
async def test_network_errors_and_5xx_are_retried_with_the_same_event_id(
    tmp_path: Path, hook: FakeReceiver, trouble: object
) -> None:
    hook.then(trouble, trouble)  # type: ignore[arg-type]
    async with harness(tmp_path, webhook_yaml(), {HOOK_VAR: hook.url}) as h:
        await h.set("payments.api", Grade.RED)
        got = await wait_ok(hook, 1, timeout_s=20)
        _, _, oncall = next(h.notifier.sink_stats())
        await eventually(lambda: oncall.sent == 1 and oncall.pending == 0)
        assert oncall.retried == 2
    assert len(got) == 3
    assert len({r.body["event_id"] for r in got}) == 1


async def test_a_400_is_counted_and_not_retried(
    tmp_path: Path, hook: FakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    hook.then(status(400))
    async with harness(tmp_path, webhook_yaml(), {HOOK_VAR: hook.url}) as h:
        await h.set("payments.api", Grade.RED)
        await asyncio.to_thread(hook.wait_for, lambda got: len(got) >= 1)
        await asyncio.sleep(0.5)
        _, _, oncall = next(h.notifier.sink_stats())
        assert (oncall.failed, oncall.retried, oncall.sent, oncall.pending) == (1, 0, 0, 0)
        # The next transition is a new message, delivered.
        await h.set("payments.api", Grade.GREEN)
        await wait_ok(hook, 1)
    assert len(hook.got()) == 2
    assert "refused message" in caplog.text and "HTTP 400" in caplog.text
    assert hook.url not in caplog.text


async def test_a_message_older_than_max_age_is_dropped_and_counted(
    tmp_path: Path, hook: FakeReceiver
) -> None:
    hook.then(*[status(500)] * 100)
    async with harness(
        tmp_path, webhook_yaml(max_age="1s"), {HOOK_VAR: hook.url}, retry_max_s=0.2
    ) as h:
        await h.set("payments.api", Grade.RED)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            _, _, oncall = next(h.notifier.sink_stats())
            if oncall.dropped:
                break
            await asyncio.sleep(0.1)
        assert (oncall.dropped, oncall.sent, oncall.pending) == (1, 0, 0)
        metrics = h.engine.metrics.render().decode()
    assert 'zeroprobe_notifications_dropped_total{sink="oncall",type="webhook"} 1.0' in metrics


async def test_an_unset_url_variable_keeps_messages_waiting(tmp_path: Path) -> None:
    async with harness(tmp_path, webhook_yaml(), {}) as h:
        await h.set("payments.api", Grade.RED)
        await h.settle()
        await asyncio.sleep(0.6)
        (health,) = h.notifier.health()
        assert health.state == "no URL"
        assert HOOK_VAR in health.detail
        assert health.pending == 1


# Restarts -------------------------------------------------------------------------------------


async def test_a_restart_re_alerts_nothing_and_announces_a_recovery_made_meanwhile(
    tmp_path: Path, hook: FakeReceiver
) -> None:
    env = {HOOK_VAR: hook.url}
    ids = ("payments.api", "orders.api")
    async with harness(tmp_path, webhook_yaml(), env, ids) as h:
        await h.set("payments.api", Grade.RED)
        await h.set("orders.api", Grade.YELLOW)
        await wait_ok(hook, 1)
    async with harness(tmp_path, webhook_yaml(), env, ids) as h:
        await h.set("payments.api", Grade.RED)  # still RED after the restart: not again
        await h.set("orders.api", Grade.GREEN)  # recovered while "down": announced
        await wait_ok(hook, 2)
        await asyncio.sleep(0.5)
    first, second = hook.delivered()
    assert {(t["service_id"], t["to"]) for t in first["transitions"]} == {
        ("payments.api", "RED"),
        ("orders.api", "YELLOW"),
    }
    assert [(t["service_id"], t["from"], t["to"]) for t in second["transitions"]] == [
        ("orders.api", "YELLOW", "GREEN")
    ]


async def test_pending_messages_survive_a_restart_with_their_event_ids(
    tmp_path: Path, hook: FakeReceiver
) -> None:
    env = {HOOK_VAR: hook.url}
    hook.then(*[status(503)] * 3)
    async with harness(tmp_path, webhook_yaml(), env, retry_initial_s=5, retry_max_s=5) as h:
        await h.set("payments.api", Grade.RED)
        await asyncio.to_thread(hook.wait_for, lambda got: len(got) >= 1)
    refused = hook.got()[0].body
    hook.script.clear()
    async with harness(tmp_path, webhook_yaml(), env) as h:
        await wait_ok(hook, 1)
        await asyncio.sleep(0.3)
    (delivered,) = hook.delivered()
    assert delivered["event_id"] == refused["event_id"]
    assert delivered["transitions"] == refused["transitions"]


# Delivery outcomes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status_code", "retry"),
    [
        *[(200, None), (204, None), (400, False), (401, False), (404, False), (410, False)],
        *[(429, True), (500, True), (502, True), (503, True)],
    ],
)
def test_which_statuses_are_retried(status_code: int, retry: bool | None) -> None:
    delivery = judge(status_code, {}, b"")
    assert delivery.ok is (retry is None)
    if retry is not None:
        assert delivery.retry is retry


def test_retry_after_in_seconds_a_date_and_discords_body() -> None:
    assert retry_after_s({"Retry-After": "7"}) == 7
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= (retry_after_s({"Retry-After": later}) or 0) <= 31
    assert retry_after_s({}, b'{"retry_after": 1.25, "global": false}') == 1.25
    assert retry_after_s({"Retry-After": "2"}, b'{"retry_after": 1.25}') == 2
    assert retry_after_s({"Retry-After": "soon"}) is None


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    for attempts, (low, high) in {1: (0.5, 1), 2: (1, 2), 3: (2, 4), 10: (30, 60)}.items():
        waits = [backoff_s(attempts, 1.0, 60.0) for _ in range(200)]
        assert all(low <= w <= high for w in waits)
        assert max(waits) - min(waits) > (high - low) / 4  # jittered, not fixed
