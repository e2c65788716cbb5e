"""A real `zeroprobe serve` stack for the HTTP-input and fuzz tests: `server.listening` (the
limits and timeouts of production) in a thread of its own, serving two shipped contexts (a
Prometheus query and Alertmanager alerts) against the demo's simulated monitoring APIs."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.conftest import TESTS
from zeroprobe.config.loader import load_contexts
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.simulators.monitoring import SimulatedMonitoring
from zeroprobe.web.server import listening

SHIPPED = TESTS.parent / "contexts"
#: Shipped contexts the served engine probes; both talk to SimulatedMonitoring.
SERVED_IDS = ("payments.api.errorrate", "payments.alerts.critical")


class RecordedLogs(logging.Handler):
    """Every record at WARNING or above, and every record carrying a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING or record.exc_info:
            self.records.append(record)

    def lines(self) -> list[str]:
        return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in self.records]


@dataclass
class Served:
    """What a test gets: the URL, the engine and the log records of the serving thread."""

    url: str
    engine: Engine
    logs: RecordedLogs
    _loop: asyncio.AbstractEventLoop = field(repr=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextmanager
def served(contexts: Path, **settings: Any) -> Iterator[Served]:
    """Serve copies of the shipped monitoring contexts on 127.0.0.1 until the block exits;
    `settings` override Settings fields (timeouts). Waits until the first round finished."""
    for service_id in SERVED_IDS:
        shutil.copy(SHIPPED / f"{service_id}.md", contexts / f"{service_id}.md")
    logs = RecordedLogs()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(logs)
    root.setLevel(logging.DEBUG)  # debug records with tracebacks are recorded too
    with SimulatedMonitoring() as monitoring:
        environ = {
            "ZEROPROBE_CONNECTION_PROMETHEUS": monitoring.url,
            "ZEROPROBE_CONNECTION_ALERTMANAGER": monitoring.url,
        }
        config = replace(
            Settings(),
            contexts=str(contexts),
            host="127.0.0.1",
            port=0,
            first_run_spread_s=0.0,
            contexts_poll_s=0.0,
            shutdown_timeout_s=1.0,
            **settings,
        )
        report = load_contexts(contexts, environ)
        assert report.ok, [str(p) for p in report.problems]
        engine = Engine(report.specs, config, environ)
        started = threading.Event()
        box: dict[str, Any] = {}

        async def run() -> None:
            stop = asyncio.Event()
            box["stop"] = stop
            box["loop"] = asyncio.get_running_loop()
            async with listening(engine) as (_, url):
                box["url"] = url
                started.set()
                await stop.wait()

        def thread_main() -> None:
            try:
                asyncio.run(run())
            except BaseException as exc:  # reported by the caller
                box["error"] = exc
            finally:
                started.set()

        thread = threading.Thread(target=thread_main, name="zeroprobe-served", daemon=True)
        thread.start()
        try:
            assert started.wait(15), "the server did not start within 15 s"
            if "error" in box:
                raise RuntimeError("the server failed to start") from box["error"]
            url: str = box["url"]
            _wait_ready(url)
            yield Served(url=url, engine=engine, logs=logs, _loop=box["loop"])
        finally:
            if "loop" in box and "stop" in box:
                box["loop"].call_soon_threadsafe(box["stop"].set)
            thread.join(15)
            root.removeHandler(logs)
            root.setLevel(previous_level)
    assert not thread.is_alive(), "the server did not stop within 15 s"
    if "error" in box:
        raise RuntimeError("the server failed") from box["error"]


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass  # 503 (HTTPError) until the first round finished
        assert time.monotonic() < deadline, "the first round did not finish within 15 s"
        time.sleep(0.05)
