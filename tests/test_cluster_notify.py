"""Notifications in a cluster: both replicas of a shard see the same colour change, but a
direct sink gets one message (replica 0 sends it), and ids of another shard notify nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from schemas.grading import Grade
from tests.notify_fakes import FakeReceiver
from tests.notify_support import (
    PAGE_URL,
    line,
    webhook_receiver,  # noqa: F401 - the `hook` fixture
    write_notifiers,
)
from tests.status_page_support import Script, scripted
from zeroprobe.config.notifiers import load_notifiers
from zeroprobe.config.settings import Settings
from zeroprobe.config.topology import Topology
from zeroprobe.engine.core import Engine
from zeroprobe.engine.runner import now_ms
from zeroprobe.notify.notifier import Notifier

HOOK_VAR = "ONCALL_HOOK_URL"
WEBHOOK = (
    "coalesce: 100ms\n"
    "sinks:\n"
    "  - name: oncall\n"
    "    type: webhook\n"
    f"    url_env: {HOOK_VAR}\n"
    "    timeout: 1s\n"
)
PEERS = ("http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9")


@asynccontextmanager
async def pod(
    folder: Path, hook: FakeReceiver, topology: Topology, script: Script, ids: list[str]
) -> AsyncIterator[Engine]:
    environ = {HOOK_VAR: hook.url}
    report = load_notifiers(write_notifiers(folder / "config", WEBHOOK), environ)
    settings = Settings(
        notifiers=str(folder / "config" / "notifiers.yaml"),
        data_dir=str(folder / "data"),
        external_url=PAGE_URL,
        topology=topology,
    )
    contexts = [scripted(sid) for sid in ids]
    engine = Engine(contexts, settings, environ, kinds=script.kinds(), notifiers=report.notifiers)
    notifier = Notifier(engine, retry_initial_s=0.05, retry_max_s=0.5)
    await notifier.start()
    try:
        yield engine
    finally:
        await engine.stop()
        await notifier.stop()


async def test_one_message_per_change_from_two_replicas(tmp_path: Path, hook: FakeReceiver) -> None:
    ids = [f"notify.probe.{n}" for n in range(12)]
    shards = Topology(shards=2, replicas=2, index=0, peers=PEERS)
    owned = [sid for sid in ids if shards.owns(sid)]
    other = next(sid for sid in ids if not shards.owns(sid))
    assert owned
    script = Script()
    async with (
        pod(tmp_path / "r0", hook, shards, script, ids) as replica0,
        pod(
            tmp_path / "r1",
            hook,
            Topology(shards=2, replicas=2, index=1, peers=PEERS),
            script,
            ids,
        ) as replica1,
    ):
        for sid in [*owned, other]:
            script.lines[sid] = [line(Grade.RED)]
        for engine in (replica0, replica1):
            for sid in [*owned, other]:
                await engine.run_once(sid)
        await asyncio.to_thread(
            hook.wait_for,
            lambda got: (
                sum(len(r.body["transitions"]) for r in got if r.answered == "ok") >= len(owned)
            ),
            10,
        )
        await asyncio.sleep(0.5)  # time for a duplicate to arrive, if one were sent
    notified = [t["service_id"] for body in hook.delivered() for t in body["transitions"]]
    assert sorted(notified) == sorted(owned)


async def test_an_incident_taken_over_from_another_pod_is_not_announced_again_and_its_recovery_is(
    tmp_path: Path, hook: FakeReceiver
) -> None:
    """A pod takes an id's result from the pod that notified it (a warm start; in a reshard
    the id's previous owner) and has nothing of its own in its outbox: the incident still on
    is not announced again, and its recovery is announced as one."""
    sid = "notify.taken.over"
    single = Topology()
    script = Script()
    script.lines[sid] = [line(Grade.RED)]
    async with pod(tmp_path / "before", hook, single, script, [sid]) as before:
        await before.run_once(sid)
        await asyncio.to_thread(hook.wait_for, lambda got: len(hook.delivered()) >= 1, 10)
        (snapshot,) = before.store.snapshots(now_ms(), lambda s: s == sid)
    async with pod(tmp_path / "after", hook, single, script, [sid]) as after:
        assert after.store.restore(snapshot)
        await after.run_once(sid)  # still RED
        script.lines[sid] = [line(Grade.GREEN)]
        await after.run_once(sid)  # recovered here
        await asyncio.to_thread(hook.wait_for, lambda got: len(hook.delivered()) >= 2, 10)
        await asyncio.sleep(0.5)  # time for a duplicate to arrive, if one were sent
    changes = [
        (t["service_id"], t["from"], t["to"])
        for body in hook.delivered()
        for t in body["transitions"]
    ]
    assert changes == [(sid, None, "RED"), (sid, "RED", "GREEN")]
