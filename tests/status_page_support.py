"""Shared by the status-page tests: staged results, a scripted probe kind, hostile payloads,
an HTML auditor and a zeroprobe served from a background thread (for the browser tests)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from probes.base import Kind, Observation, ProbeContext
from schemas.context_spec import SpecBase
from schemas.grading import Grade, Line
from zeroprobe.config.kinds import installed_kinds
from zeroprobe.config.loader import ContextFile
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.engine.runner import now_ms
from zeroprobe.engine.store import Result
from zeroprobe.notify.notifier import Notifier
from zeroprobe.web.app import create_app

T = TypeVar("T")

# Hostile text, as a spec author or a target could send it. Each payload that ran would set
# window.__xss, so a test can tell that nothing ran.
XSS_DESCRIPTION = (
    '<script>window.__xss = "description script"</script>'
    "<img src=x onerror=\"window.__xss='description img'\">"
)
XSS_BODY = """# Runbook <script>window.__xss = "heading script"</script>

<script>window.__xss = "body script"</script>

<img src=x onerror="window.__xss='body img'">

Click [me](javascript:window.__xss='body link') or
<a href="javascript:window.__xss='raw link'">raw link</a>.

**Bold** and `code` survive; [the wiki](https://wiki.example.com/runbook) too.
"""
XSS_LINES = (
    Line(
        "- <img src=x onerror=\"window.__xss='line img'\"> member db1:27017 lag 6120ms", Grade.RED
    ),
    Line(
        "- [click](javascript:window.__xss='line link') <script>window.__xss='line'</script>",
        Grade.YELLOW,
    ),
    Line("- **formatted** member `db2:27017` see [docs](https://docs.example.com/x)", Grade.GREEN),
)


# A probe kind the test scripts ------------------------------------------------------------------


class ScriptedSpec(SpecBase):
    """A spec of a kind no file can name: its lines come from the test."""

    kind: Literal["scripted"]


@dataclass
class ScriptedObservation(Observation):
    lines: list[Line]


@dataclass
class Script:
    """Lines each scripted probe reports on its next run, by service id."""

    lines: dict[str, list[Line]] = field(default_factory=dict)

    def kind(self) -> Kind[ScriptedSpec, ScriptedObservation]:
        async def probe(spec: ScriptedSpec, ctx: ProbeContext) -> ScriptedObservation:
            return ScriptedObservation(list(self.lines.get(spec.service_id, [])))

        def grade(observation: ScriptedObservation, spec: ScriptedSpec) -> list[Line]:
            return observation.lines

        return Kind(name="scripted", spec=ScriptedSpec, probe=probe, grade=grade)

    def kinds(self) -> dict[str, Kind[Any, Any]]:
        """The installed kinds plus the scripted kind."""
        return {**installed_kinds().kinds, "scripted": self.kind()}


def scripted(service_id: str, *, body: str = "", **fields: Any) -> ContextFile:
    """A scripted spec as if loaded from `<service_id>.md`."""
    values: dict[str, Any] = {"service_id": service_id, "kind": "scripted", **fields}
    return ContextFile(ScriptedSpec.model_validate(values), f"{service_id}.md", 2, body)


# Staged results ---------------------------------------------------------------------------------


def staged_engine(
    contexts: Sequence[ContextFile], script: Script | None = None, **settings: Any
) -> Engine:
    """An engine of scripted probes: unstarted, tests put results into its store themselves."""
    return Engine(list(contexts), Settings(**settings), {}, kinds=(script or Script()).kinds())


def stage(
    engine: Engine,
    service_id: str,
    lines: Sequence[Line],
    *,
    age_s: float = 2.0,
    outcome: str = "success",
    at_ms: int | None = None,
) -> Result:
    """Put a result collected `age_s` ago into the engine's store."""
    result = Result.build(
        service_id=service_id,
        kind=engine.contexts[service_id].spec.kind,
        lines=lines,
        collected_at_ms=(at_ms if at_ms is not None else now_ms()) - round(age_s * 1000),
        duration_s=0.012,
        outcome=outcome,
        reached_target=outcome == "success",
    )
    engine.store.put(result)
    return result


def lines_of(grade: Grade, *members: str) -> list[Line]:
    """One replication-lag line per member, all of `grade`."""
    lag = {Grade.GREEN: 120, Grade.YELLOW: 6120, Grade.RED: 45000}[grade]
    return [Line(f"- Secondary {m} replication lag {lag}ms", grade) for m in members]


# Reading HTML ---------------------------------------------------------------------------------


class HtmlAudit(HTMLParser):
    """Every element and attribute of a page, and its text, as a browser's parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text_parts: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        """The text a reader sees (script contents included, if there were any)."""
        return "".join(self.text_parts)

    def tags(self, name: str) -> list[dict[str, str]]:
        """The attributes of every `name` element."""
        return [attrs for tag, attrs in self.elements if tag == name]

    def unsafe(self) -> list[str]:
        """Everything that could run script: other scripts than ours, event handlers,
        images, frames, objects, and links to anything but http(s), mailto or this site."""
        found = []
        for tag, attrs in self.elements:
            if tag == "script" and not attrs.get("src", "").startswith("/static/app.js"):
                found.append(f"<script {attrs}>")
            if tag in ("img", "iframe", "object", "embed", "svg", "math", "base", "form"):
                found.append(f"<{tag} {attrs}>")
            found += [f"<{tag} {name}=...>" for name in attrs if name.lower().startswith("on")]
            for name in ("href", "src", "action", "formaction"):
                if name in attrs and not safe_url(attrs[name]):
                    found.append(f"<{tag} {name}={attrs[name]!r}>")
        return found


def safe_url(url: str) -> bool:
    """http(s), mailto or a relative URL."""
    return urlsplit(url.strip()).scheme.lower() in ("", "http", "https", "mailto")


# A zeroprobe in a background thread (the browser tests drive it from the test's thread) ----


class BackgroundServer:
    """`create_app(engine)` on 127.0.0.1 in a thread of its own with its own event loop."""

    def __init__(
        self,
        engine: Engine,
        *,
        start_engine: bool = True,
        port: int = 0,
        notifier: Notifier | None = None,
    ) -> None:
        self.engine = engine
        self.notifier = notifier
        self.port = port
        self._start_engine = start_engine
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BackgroundServer:
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="zeroprobe-test-server")
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("the test server did not start within 15 s")
        if self._error is not None:
            raise RuntimeError("the test server failed to start") from self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start() or stop()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = create_app(self.engine, start_engine=self._start_engine, notifier=self.notifier)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
            await site.start()
            address = runner.addresses[0]
            self.port = int(address[1])
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def call(self, make: Callable[[], Coroutine[Any, Any, T]], timeout_s: float = 15) -> T:
        """Run a coroutine on the server's loop (where the engine lives) and return its value."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result(timeout_s)

    def stop(self) -> None:
        """Stop serving and wait for the engine to stop."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(15)
            assert not self._thread.is_alive(), "the test server did not stop within 15 s"
        self._thread = None
        if self._error is not None:
            raise RuntimeError("the test server failed") from self._error
