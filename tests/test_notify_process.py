"""Notifications from real `zeroprobe serve` processes: a `kill -9` while a message is pending
and restarts (nothing lost, nothing twice, no re-alert, a recovery made while down announced),
and two replicas pushing the same alert to a real Alertmanager, which deduplicates them.

The probes are `http_endpoint` probes of a loopback target whose status the test sets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.notify_fakes import HANG, FakeReceiver, RoutingAlertmanager, notifications_for, status
from tests.notify_support import webhook_receiver  # noqa: F401 - the `hook` fixture
from tests.servers import free_port, http_json
from zeroprobe.simulators.monitoring import ThreadedApp

ZEROPROBE = str(Path(sys.executable).with_name("zeroprobe"))
HOOK_VAR = "ONCALL_HOOK_URL"
SERVICE_ID = "shop.health"


class Target:
    """A web endpoint whose /health answers the status the test sets."""

    def __init__(self) -> None:
        self.status = 200
        self.server = ThreadedApp(self._app)

    def _app(self) -> web.Application:
        async def health(request: web.Request) -> web.Response:
            return web.Response(status=self.status, text="status")

        app = web.Application()
        app.router.add_get("/health", health)
        return app


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    t.server.start()
    try:
        yield t
    finally:
        t.server.stop()


def write_contexts(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{SERVICE_ID}.yaml").write_text(
        f"service_id: {SERVICE_ID}\n"
        "kind: http_endpoint\n"
        "connection: shop\n"
        "interval: 1s\n"
        "timeout: 500ms\n"
        "checks: [{path: /health}]\n",
        encoding="utf-8",
    )
    return folder


class Zeroprobe:
    """`zeroprobe serve` processes of one test; every one still running is killed at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        with (self.tmp_path / f"zp{n}.err").open("wb") as err:
            proc = subprocess.Popen(
                [ZEROPROBE, "serve", "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=self.tmp_path,
            )
        self.procs.append(proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert proc.poll() is None, self.log(n)
            try:
                code, _ = http_json(f"http://127.0.0.1:{port}/readyz", timeout_s=1)
            except OSError:
                code = 0
            if code == 200:
                return proc
            time.sleep(0.1)
        raise AssertionError(f"not ready:\n{self.log(n)}")

    def log(self, n: int) -> str:
        return (self.tmp_path / f"zp{n}.err").read_text(encoding="utf-8", errors="replace")

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def zeroprobe(tmp_path: Path) -> Iterator[Zeroprobe]:
    procs = Zeroprobe(tmp_path)
    try:
        yield procs
    finally:
        procs.kill_all()


def base_env(tmp_path: Path, target: Target, notifiers: Path, data: str = "data") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROPROBE_")}
    env.update(
        ZEROPROBE_CONTEXTS=str(write_contexts(tmp_path / "contexts")),
        ZEROPROBE_NOTIFIERS=str(notifiers),
        ZEROPROBE_DATA_DIR=str(tmp_path / data),
        ZEROPROBE_CONNECTION_SHOP=target.server.url,
        ZEROPROBE_EXTERNAL_URL="http://zeroprobe.test",
    )
    return env


def wait(what: str, check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s}s")


def transitions(bodies: list[Any]) -> list[tuple[str | None, str]]:
    return [(t["from"], t["to"]) for body in bodies for t in body["transitions"]]


def test_kill_9_loses_nothing_sends_nothing_twice_and_announces_a_recovery_made_while_down(
    tmp_path: Path, target: Target, hook: FakeReceiver, zeroprobe: Zeroprobe
) -> None:
    notifiers = tmp_path / "notifiers.yaml"
    notifiers.write_text(
        f"coalesce: 300ms\nsinks:\n  - {{name: oncall, type: webhook, url_env: {HOOK_VAR}, "
        "timeout: 30s}\n",
        encoding="utf-8",
    )
    env = {**base_env(tmp_path, target, notifiers), HOOK_VAR: hook.url}
    port = free_port()
    # 1. RED; the receiver refuses once, then takes the retry and never answers: killed then.
    target.status = 500
    hook.then(status(503), HANG)
    first = zeroprobe.start(env, port)
    wait("the retry is hanging", lambda: len(hook.got()) == 2)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    pending_event = hook.got()[0].body["event_id"]
    assert hook.got()[1].body["event_id"] == pending_event
    # 2. Restarted: the pending message goes out again, same event_id; RED is not re-alerted.
    second = zeroprobe.start(env, port)
    wait("delivered after the restart", lambda: len(hook.delivered()) == 1)
    time.sleep(3)  # three more runs, all RED
    assert len(hook.delivered()) == 1
    assert {r.body["event_id"] for r in hook.got()} == {pending_event}
    assert transitions(hook.delivered()) == [(None, "RED")]
    # 3. Killed while RED; the target recovers while zeroprobe is down.
    second.send_signal(signal.SIGKILL)
    second.wait(timeout=10)
    target.status = 200
    zeroprobe.start(env, port)
    wait("the recovery is announced", lambda: len(hook.delivered()) == 2)
    time.sleep(2)
    delivered = hook.delivered()
    assert transitions(delivered) == [(None, "RED"), ("RED", "GREEN")]
    # Exactly once per event_id among the deliveries; the hung request was the only repeat.
    assert len({body["event_id"] for body in delivered}) == 2


def test_two_replicas_are_one_alert_in_alertmanager(
    tmp_path: Path, target: Target, zeroprobe: Zeroprobe, tmp_path_factory: pytest.TempPathFactory
) -> None:
    am_hook = FakeReceiver("webhook").start()
    am = RoutingAlertmanager(tmp_path_factory.mktemp("am-replicas"), am_hook.url)
    try:
        am.start()
        notifiers = tmp_path / "notifiers.yaml"
        notifiers.write_text(
            f"alertmanager:\n  urls: [{am.url}]\n  resend_interval: 1s\n", encoding="utf-8"
        )
        target.status = 500
        for replica in ("a", "b"):
            env = base_env(tmp_path, target, notifiers, data=f"data-{replica}")
            zeroprobe.start(env, free_port())

        def one_alert() -> bool:
            code, alerts = am.alerts(f'service_id="{SERVICE_ID}"')
            return code == 200 and len(alerts) == 1

        wait("the alert", one_alert)
        wait("on-call notified", lambda: len(notifications_for(am_hook, SERVICE_ID)) >= 1)
        time.sleep(4)  # both replicas push every second meanwhile
        _, alerts = am.alerts(f'service_id="{SERVICE_ID}"')
        assert len(alerts) == 1
        assert alerts[0]["labels"]["severity"] == "critical"
        assert [n["status"] for n in notifications_for(am_hook, SERVICE_ID)] == ["firing"]
        _, watchdogs = am.alerts('alertname="ZeroprobeWatchdog"')
        assert len(watchdogs) == 1
        # Both replicas stop: everything they pushed resolves by its endsAt, which is why
        # the watchdog exists. (Not waited for here: 4 resend intervals.)
    finally:
        am.stop()
        am_hook.stop()
