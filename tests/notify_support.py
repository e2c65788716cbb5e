"""An engine of scripted probes with a notifier, for the notification tests.

Probes run when the test says (`Harness.set`), through the real runner, so every colour
change goes through flap damping and the engine's hook exactly as in `serve`. The notifier,
its outbox (a SQLite file under the test's folder) and its send loops are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schemas.grading import Grade, Line
from tests.notify_fakes import FakeReceiver
from tests.status_page_support import Script, scripted
from zeroprobe.config.notifiers import load_notifiers
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.engine.store import Result
from zeroprobe.notify.notifier import Notifier

PAGE_URL = "http://zeroprobe.test:8080"


def line(grade: Grade, text: str | None = None) -> Line:
    """A graded line."""
    return Line(text or f"- measured {grade.value.lower()}", grade)


@dataclass
class Harness:
    """A scripted engine and its notifier."""

    script: Script
    engine: Engine
    notifier: Notifier

    async def set(self, service_id: str, grade: Grade, text: str | None = None) -> Result:
        """Run `service_id` once, measuring `grade`."""
        self.script.lines[service_id] = [line(grade, text)]
        return await self.engine.run_once(service_id)

    async def set_all(self, service_ids: Sequence[str], grade: Grade) -> None:
        """Run these probes at once, each measuring `grade`."""
        for service_id in service_ids:
            self.script.lines[service_id] = [line(grade)]
        await asyncio.gather(*(self.engine.run_once(sid) for sid in service_ids))

    async def settle(self) -> None:
        """Every transition so far is in the outbox."""
        await self.notifier.settle()


def write_notifiers(folder: Path, text: str) -> Path:
    """The notifiers file `text` as `folder/notifiers.yaml`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "notifiers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@asynccontextmanager
async def harness(
    tmp_path: Path,
    notifiers_yaml: str,
    environ: Mapping[str, str],
    service_ids: Sequence[str] = ("payments.api",),
    *,
    data_dir: Path | None = None,
    spec_fields: Mapping[str, Any] | None = None,
    retry_initial_s: float = 0.05,
    retry_max_s: float = 0.5,
) -> AsyncIterator[Harness]:
    """A started notifier over an unstarted engine of scripted probes; stopped at the end."""
    path = write_notifiers(tmp_path / "config", notifiers_yaml)
    report = load_notifiers(path, environ)
    assert not report.errors, report.errors
    script = Script()
    contexts = [scripted(sid, **(spec_fields or {})) for sid in service_ids]
    settings = Settings(
        notifiers=str(path),
        data_dir=str(data_dir or tmp_path / "data"),
        external_url=PAGE_URL,
    )
    engine = Engine(
        contexts, settings, dict(environ), kinds=script.kinds(), notifiers=report.notifiers
    )
    notifier = Notifier(engine, retry_initial_s=retry_initial_s, retry_max_s=retry_max_s)
    await notifier.start()
    try:
        yield Harness(script, engine, notifier)
    finally:
        await engine.stop()
        await notifier.stop()


async def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait until `check()` holds: a receiver has its request a moment before the notifier
    has read the answer and counted it."""
    for _ in range(round(timeout_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check(), "condition not met in time"


@pytest.fixture(name="hook")
def webhook_receiver() -> Iterator[FakeReceiver]:
    """`hook`: a fake webhook receiver on loopback (a module that wants it imports
    `webhook_receiver`)."""
    receiver = FakeReceiver("webhook").start()
    try:
        yield receiver
    finally:
        receiver.stop()
