"""Notifications are observable (metrics per sink, each sink's health on the status page) and
their URLs are secrets everywhere: page, API, logs, metrics."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from probes.redact import Redactor
from schemas.grading import Grade
from tests.notify_fakes import FakeReceiver, status
from tests.notify_support import (
    line,
    webhook_receiver,  # noqa: F401 - the `hook` fixture
    write_notifiers,
)
from tests.status_page_support import Script, scripted
from zeroprobe.config.notifiers import load_notifiers
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.notify.notifier import Notifier
from zeroprobe.notify.outbox import DB_NAME, Outbox
from zeroprobe.web.app import create_app

TOKEN = "T0KEN5ecretPath77"


@pytest.fixture
async def served(
    tmp_path: Path, hook: FakeReceiver, aiohttp_client: AiohttpClient
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Engine, Script]]:
    yaml = (
        "coalesce: 100ms\n"
        "alertmanager:\n  urls: [http://127.0.0.1:9]\n  resend_interval: 5s\n"
        "sinks:\n  - {name: oncall, type: webhook, url_env: ONCALL_HOOK_URL, timeout: 1s}\n"
        "  - {name: chat, type: discord, url_env: CHAT_HOOK_URL}\n"
    )
    path = write_notifiers(tmp_path, yaml)
    # The webhook's URL carries its token in the path, as Slack's and Discord's do.
    env = {"ONCALL_HOOK_URL": f"{hook.url}/{TOKEN}"}
    report = load_notifiers(path, env)
    script = Script()
    redact = Redactor.from_environ(env)
    engine = Engine(
        [scripted("payments.api")],
        Settings(notifiers=str(path), data_dir=str(tmp_path / "data")),
        env,
        kinds=script.kinds(),
        redact=redact,
        notifiers=report.notifiers,
    )
    notifier = Notifier(engine, retry_initial_s=0.05, retry_max_s=0.2)
    client = await aiohttp_client(create_app(engine, start_engine=False, notifier=notifier))
    yield client, engine, script
    await engine.stop()


async def test_metrics_page_and_logs_show_each_sink_and_never_its_url(
    served: tuple[TestClient[web.Request, web.Application], Engine, Script],
    hook: FakeReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, engine, script = served
    hook.then(status(500), status(400))  # retried, then refused with the URL quoted back
    script.lines["payments.api"] = [line(Grade.RED)]
    await engine.run_once("payments.api")
    await asyncio.to_thread(hook.wait_for, lambda got: len(got) == 2)
    await asyncio.sleep(0.3)

    metrics = await (await client.get("/metrics")).text()
    for series in (
        'zeroprobe_notifications_sent_total{sink="oncall",type="webhook"} 0.0',
        'zeroprobe_notifications_retried_total{sink="oncall",type="webhook"} 1.0',
        'zeroprobe_notifications_failed_total{sink="oncall",type="webhook"} 1.0',
        'zeroprobe_notifications_dropped_total{sink="oncall",type="webhook"} 0.0',
        'zeroprobe_notifications_queue_length{sink="oncall",type="webhook"} 0.0',
        'zeroprobe_notifications_queue_length{sink="chat",type="discord"} 1.0',
        'zeroprobe_notifications_transitions_total{status="RED"} 1.0',
        "zeroprobe_notifications_outbox_durable 1.0",
    ):
        assert series in metrics
    assert 'zeroprobe_notifications_retried_total{sink="alertmanager-0",type="alertmanager"}' in (
        metrics
    )
    assert 'zeroprobe_notifications_oldest_pending_age_seconds{sink="chat",type="discord"}' in (
        metrics
    )

    page = await (await client.get("/")).text()
    assert "Notifications" in page and "outbox on disk" in page
    assert 'data-sink="oncall"' in page and 'data-sink="chat"' in page
    assert "CHAT_HOOK_URL is not set" in page
    assert "HTTP 400" in page  # the refusal, scrubbed
    assert "127.0.0.1:9" in page  # an Alertmanager shows as host:port

    api = await (await client.get("/api/v1/results")).text()
    sinks = await (await client.get("/api/v1/notifications")).json()
    assert sinks["configured"] is True and sinks["outbox"] == "disk"
    by_name = {row["name"]: row for row in sinks["sinks"]}
    assert by_name["oncall"]["state"] == "failing"
    assert by_name["oncall"]["failed"] == 1
    assert by_name["oncall"]["detail"].startswith("HTTP 400")
    assert by_name["chat"]["state"] == "no URL"
    assert by_name["alertmanager-0"]["type"] == "alertmanager"
    for text in (metrics, page, api, json.dumps(sinks), caplog.text):
        assert TOKEN not in text
        assert hook.url not in text
    assert "***" in caplog.text  # the 400's echo of the URL was logged, scrubbed


async def test_a_corrupt_outbox_is_moved_aside_and_started_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a SQLite database at all" * 100)
    outbox = Outbox(tmp_path)
    await outbox.open()
    try:
        assert outbox.durable
        assert await outbox.notified() == {}
    finally:
        await outbox.close()
    aside = await asyncio.to_thread(lambda: list(tmp_path.glob("*.corrupt-*")))
    assert [p.name.split(".corrupt-")[0] for p in aside] == [DB_NAME]
    assert "is corrupt" in caplog.text
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("PRAGMA quick_check").fetchone() == ("ok",)


async def test_an_unwritable_data_directory_degrades_to_memory_with_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x", encoding="utf-8")
    outbox = Outbox(blocked / "data")
    await outbox.open()
    try:
        assert not outbox.durable
        assert "cannot create" in outbox.degraded
        await outbox.record([])  # still works, in memory
    finally:
        await outbox.close()
    assert "Notifications go on from memory only" in caplog.text


async def test_without_a_notifiers_file_the_api_says_so(aiohttp_client: AiohttpClient) -> None:
    engine = Engine([scripted("payments.api")], Settings(), {}, kinds=Script().kinds())
    client = await aiohttp_client(create_app(engine, start_engine=False))
    body = await (await client.get("/api/v1/notifications")).json()
    assert body == {"configured": False, "outbox": "memory", "outbox_problem": "", "sinks": []}
    page = await (await client.get("/")).text()
    assert "Notifications" not in page
