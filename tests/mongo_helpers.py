"""What the MongoDB wire tests share: an engine around one spec, its lines and its series."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import subprocess
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probes.mongo_replication_lag import elections
from schemas.grading import Grade
from tests.conftest import EngineFactory, SpecFactory
from zeroprobe.engine.core import Engine
from zeroprobe.engine.store import Result

SERVICE_ID = "test.mongo.lag"  # the make_spec default
CONNECTION_VAR = "ZEROPROBE_CONNECTION_RS"  # the make_spec default label "rs"
LAG_METRIC = "zeroprobe_mongo_replication_lag_seconds"
WINDOW_METRIC = "zeroprobe_mongo_oplog_window_seconds"
HEADROOM_METRIC = "zeroprobe_mongo_oplog_headroom_seconds"
#: PyMongo may leave a socket to the garbage collector when a client closes (test_probe_wire).
DRIVER_SOCKET_LEAK = "ignore:unclosed <socket.socket:ResourceWarning"


@pytest.fixture(autouse=True, name="_collect_leaked_driver_sockets")
def collect_leaked_driver_sockets() -> Iterator[None]:
    """Collect the sockets PyMongo left behind before the test ends, so that their warning
    (ignored by DRIVER_SOCKET_LEAK in the modules that import this) is not raised later, in
    another test. Autouse in a module that imports it."""
    yield
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "unclosed <socket.socket", ResourceWarning)
        gc.collect()


@contextlib.asynccontextmanager
async def engine_for(
    make_engine: EngineFactory,
    make_spec: SpecFactory,
    uri: str,
    environ: dict[str, str] | None = None,
    **spec: Any,
) -> AsyncIterator[Engine]:
    """An engine with one spec whose connection variable holds `uri`, plus `environ`."""
    engine = make_engine([make_spec(**spec)], {CONNECTION_VAR: uri, **(environ or {})})
    try:
        yield engine
    finally:
        await engine.stop()


def texts(result: Result) -> list[str]:
    """The actionBody lines of a result."""
    return [line.text for line in result.lines]


def graded(result: Result) -> dict[str, Grade | None]:
    """Each line's grade, by its text."""
    return {line.text: line.grade for line in result.lines}


def starting(result: Result, prefix: str) -> list[str]:
    """The lines that start with `prefix`."""
    return [text for text in texts(result) if text.startswith(prefix)]


def series(engine: Engine, metric: str, service_id: str = SERVICE_ID) -> dict[str, float]:
    """label value -> value of a kind gauge of `service_id`, from the text exposition."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(engine.metrics.render().decode()):
        if family.name != metric:
            continue
        for sample in family.samples:
            if sample.labels.get("service_id") == service_id:
                (label,) = (v for k, v in sample.labels.items() if k != "service_id")
                found[label] = sample.value
    return found


async def promtool_check(exposition: bytes) -> tuple[int, bytes, bytes]:
    """`promtool check metrics` on an exposition: (exit code, stdout, stderr)."""
    checked = await asyncio.to_thread(
        subprocess.run,
        ["promtool", "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return checked.returncode, checked.stdout, checked.stderr


class FakeClock:
    """The clock of the kind's memory (elections, oplog readings), moved by the test."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture(name="clock")
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """`clock`: the kind's clock, replaced by a FakeClock for the test (a module that wants it
    imports `fake_clock`)."""
    fake = FakeClock()
    monkeypatch.setattr(elections, "clock", fake)
    return fake
