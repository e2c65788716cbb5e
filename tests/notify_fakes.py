"""Fake notification receivers on 127.0.0.1: a webhook, Slack and Discord incoming webhooks,
and the JSON endpoint of Apprise's `json://` scheme, answering in the shapes the services
document. A test scripts their next answers: 429 with Retry-After (Discord: `retry_after` in
the body too), 500, 400, a hang, or a closed connection. Each records every request it got.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from tests.servers import AlertmanagerServer
from zeroprobe.simulators.monitoring import ThreadedApp

Flavour = Literal["webhook", "slack", "discord", "apprise"]
#: Discord refuses longer content with a 400.
DISCORD_MAX_CONTENT = 2000


@dataclass(frozen=True, slots=True)
class Answer:
    """One scripted answer: `kind` ok, status (with `status`, `retry_after_s`), hang, close."""

    kind: Literal["ok", "status", "hang", "close"] = "ok"
    status: int = 200
    retry_after_s: float | None = None


OK = Answer()
HANG = Answer("hang")
CLOSE = Answer("close")


def status(code: int, retry_after_s: float | None = None) -> Answer:
    """Answer `code` (with Retry-After when given)."""
    return Answer("status", code, retry_after_s)


@dataclass
class Received:
    """One request as the receiver got it, and what it answered."""

    at: float
    path: str
    headers: dict[str, str]
    body: Any
    answered: str


@dataclass
class FakeReceiver:
    """A receiver of one flavour; `script` answers (then OK). Thread-safe reads."""

    flavour: Flavour
    script: deque[Answer] = field(default_factory=deque)
    requests: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadedApp | None = None
    _last_url: str = ""

    def start(self) -> FakeReceiver:
        self.server = ThreadedApp(self._app)
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        paths = {
            "webhook": "/hooks/oncall",
            "slack": "/services/T000/B000/XXXXSECRETXXXX",
            "discord": "/api/webhooks/123/DISCORDSECRETTOKEN",
            "apprise": "/apprise/notify",
        }
        return self.server.url + paths[self.flavour]

    @property
    def apprise_url(self) -> str:
        """The Apprise URL that posts to this receiver: json://127.0.0.1:PORT/apprise/notify"""
        assert self.server is not None
        return f"json://127.0.0.1:{self.server.port}/apprise/notify"

    def then(self, *answers: Answer) -> FakeReceiver:
        with self._lock:
            self.script.extend(answers)
        return self

    def got(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def delivered(self) -> list[Any]:
        """Bodies the receiver accepted, in order."""
        return [r.body for r in self.got() if r.answered == "ok"]

    def wait_for(
        self, until: Callable[[list[Received]], bool], timeout_s: float = 15.0
    ) -> list[Received]:
        """Poll (blocking: call from a thread, or asyncio.to_thread) until `until` holds."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.got()
            if until(got):
                return got
            time.sleep(0.05)
        raise AssertionError(f"{self.flavour} receiver: condition not met; got {self.got()}")

    def _next(self) -> Answer:
        with self._lock:
            return self.script.popleft() if self.script else OK

    def _app(self) -> web.Application:
        async def receive(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            answer = self._next()
            self._last_url = str(request.url)
            if (
                answer.kind == "ok"
                and self.flavour == "discord"
                and isinstance(body, dict)
                and len(str(body.get("content", ""))) > DISCORD_MAX_CONTENT
            ):
                answer = status(400)
            record = Received(
                time.monotonic(),
                request.path,
                dict(request.headers),
                body,
                answer.kind if answer.kind != "status" else str(answer.status),
            )
            with self._lock:
                self.requests.append(record)
            if answer.kind == "hang":
                await asyncio.sleep(120)
            if answer.kind == "close":
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            if answer.kind == "status":
                return self._failure(answer)
            return self._success()

        app = web.Application()
        app.router.add_post("/{tail:.*}", receive)
        return app

    def _success(self) -> web.Response:
        if self.flavour == "slack":
            return web.Response(text="ok")
        if self.flavour == "discord":
            return web.Response(status=204)
        return web.json_response({"ok": True})

    def _failure(self, answer: Answer) -> web.Response:
        headers = {}
        if answer.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, round(answer.retry_after_s)))
        if self.flavour == "discord":
            body: dict[str, Any] = {"message": "error", "code": 0}
            if answer.status == 429:
                body = {
                    "message": "You are being rate limited.",
                    "retry_after": answer.retry_after_s or 0.5,
                    "global": False,
                }
            elif answer.status == 400:
                body = {"message": "Invalid Form Body", "code": 50035}
            return web.json_response(body, status=answer.status, headers=headers)
        if self.flavour == "slack":
            text = {429: "rate_limited", 400: "invalid_payload", 404: "no_service"}
            return web.Response(
                status=answer.status, text=text.get(answer.status, "error"), headers=headers
            )
        # A careless receiver quotes the URL it was called at (with its token) in its error.
        return web.json_response(
            {"error": "scripted", "url": self._last_url}, status=answer.status, headers=headers
        )


class RoutingAlertmanager(AlertmanagerServer):
    """Debian's Alertmanager routing every alert to a webhook receiver (`hook`, a fake on
    127.0.0.1) after 1 s: what on-call people would be sent, resolutions included."""

    name = "alertmanager-routing"

    def __init__(self, workdir: Path, hook_url: str) -> None:
        super().__init__(workdir)
        self.hook_url = hook_url

    def write_config(self) -> None:
        config = {
            "route": {
                "receiver": "hook",
                "group_by": ["alertname", "service_id", "severity"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "hook",
                    "webhook_configs": [{"url": self.hook_url, "send_resolved": True}],
                }
            ],
        }
        (self.workdir / "alertmanager.yml").write_text(json.dumps(config), encoding="utf-8")


def notifications_for(receiver: FakeReceiver, service_id: str) -> list[dict[str, Any]]:
    """The Alertmanager webhook notifications `receiver` got about `service_id`."""
    return [
        body
        for body in receiver.delivered()
        if isinstance(body, dict) and body.get("commonLabels", {}).get("service_id") == service_id
    ]
