"""A failed run leaves no garbage for the cyclic collector: when many runs fail at once,
every collection their exceptions would need stops the event loop (and every PUT) for
milliseconds (docs/benchmarks.md, "1,000 probes failing at once")."""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator

import pytest

from schemas.grading import Grade
from tests.conftest import EngineFactory, QuerySpecFactory
from zeroprobe.engine.runner import untangle


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The cyclic collector off, so that only reference counting frees what a run left."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def refused_url() -> str:
    """A loopback port with nothing listening: a connection there is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def cyclic_garbage(kind: type) -> int:
    """How many objects of `kind` only the cyclic collector would free (it frees them)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = sum(isinstance(o, kind) for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


@pytest.mark.usefixtures("collector_off")
async def test_refused_runs_leave_no_exception_for_the_collector(
    make_engine: EngineFactory, make_query_spec: QuerySpecFactory
) -> None:
    spec = make_query_spec()
    engine = make_engine([spec], {"ZEROPROBE_CONNECTION_PROM": refused_url()})
    try:
        await engine.run_once(spec.service_id)  # the session and its pool exist from here on
        cyclic_garbage(BaseException)
        results = [await engine.run_once(spec.service_id) for _ in range(20)]
        left = cyclic_garbage(BaseException)
    finally:
        await engine.stop()

    assert {r.grade for r in results} == {Grade.RED}
    assert {r.outcome for r in results} == {"error"}
    assert "refused" in results[-1].lines[0].text.lower()
    assert left == 0


@pytest.mark.usefixtures("collector_off")
def test_untangle_frees_a_chain_of_exceptions_and_its_frames() -> None:
    class Marker:
        """Held by a frame of the failure only."""

    def fail() -> None:
        marker = Marker()  # noqa: F841 (held by the frame)
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError as exc:
            error = exc  # kept in a variable, as libraries do: error -> frame -> error
        raise RuntimeError("connection failed") from error

    caught: list[BaseException] = []
    for _ in range(3):
        try:
            fail()
        except RuntimeError as exc:
            caught.append(exc)
    untangle(caught[0])
    caught.clear()

    assert cyclic_garbage(Marker) == 2  # the two failures not untangled
