"""The scheduler, the runner's guard rails, the health checks and the store.

Probes here are custom kinds registered through `Engine(kinds=...)`: they record when they
run, how many runs overlap, and whether they were cancelled, without any server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymongo import errors as mongo_errors

from probes.base import Kind, Observation, ProbeContext
from probes.errors import ProbeConnectionError
from schemas.context_spec import SpecBase
from schemas.grading import Grade, Line
from zeroprobe.config.loader import ContextFile
from zeroprobe.config.settings import Settings
from zeroprobe.engine import store as store_module
from zeroprobe.engine.core import Engine
from zeroprobe.engine.document import render_document
from zeroprobe.engine.runner import now_ms
from zeroprobe.engine.store import HISTORY_SIZE, HistoryRun, Result, ResultStore

KIND = "fake"
OK_LINE = Line("- fake target answered", Grade.GREEN)
# Small enough to keep the tests short, large enough to see that first runs are staggered.
SPREAD_S = 0.05


@dataclass
class Recorder:
    """What a fake probe saw: start times, overlap, cancellations, clients it used."""

    starts: list[float] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    cancelled: int = 0
    clients: list[Any] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def enter(self) -> None:
        self.starts.append(time.monotonic())
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.started.set()

    def leave(self) -> None:
        self.active -= 1


ProbeBody = Callable[[SpecBase, ProbeContext, Recorder], Any]


def fake_kind(
    recorder: Recorder, body: ProbeBody, *, liveness_needs_target: bool = False
) -> Kind[SpecBase, Observation]:
    """A probe kind whose probe records itself around `body` (an async function)."""

    async def probe(spec: SpecBase, ctx: ProbeContext) -> Observation:
        recorder.enter()
        try:
            await body(spec, ctx, recorder)
        except asyncio.CancelledError:
            recorder.cancelled += 1
            raise
        finally:
            recorder.leave()
        return Observation()

    def grade(observation: Observation, spec: SpecBase) -> list[Line]:
        assert isinstance(observation, Observation)
        return [OK_LINE]

    return Kind(
        name=KIND,
        spec=SpecBase,
        probe=probe,
        grade=grade,
        liveness_needs_target=liveness_needs_target,
    )


def spec(service_id: str = "fake.one", interval: str = "1s", timeout: str = "500ms") -> SpecBase:
    return SpecBase.model_validate(
        {"service_id": service_id, "kind": KIND, "interval": interval, "timeout": timeout}
    )


def make_engine(
    specs: list[SpecBase],
    kind: Kind[SpecBase, Observation],
    environ: dict[str, str] | None = None,
    **settings: Any,
) -> Engine:
    settings.setdefault("first_run_spread_s", SPREAD_S)
    contexts = [ContextFile(spec=s, path=f"{s.service_id}.yaml", line=1) for s in specs]
    return Engine(contexts, Settings(**settings), environ or {}, kinds={KIND: kind})


@pytest.fixture
async def engines() -> AsyncIterator[list[Engine]]:
    """Engines a test starts; each is stopped at the end, whatever happens."""
    started: list[Engine] = []
    yield started
    for engine in started:
        await engine.stop()


async def started(engines: list[Engine], engine: Engine) -> float:
    """Start `engine` (stopped at teardown); the monotonic time of the start."""
    engines.append(engine)
    at = time.monotonic()
    await engine.start()
    return at


async def wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll `condition` until true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def quick(spec: SpecBase, ctx: ProbeContext, rec: Recorder) -> None:
    await asyncio.sleep(0)


async def forever(spec: SpecBase, ctx: ProbeContext, rec: Recorder) -> None:
    await asyncio.Event().wait()


def texts(result: Result | HistoryRun | None) -> list[str]:
    assert result is not None
    return result.action_body.split("\n")


# Scheduling -------------------------------------------------------------------------------


async def test_first_run_right_after_start_then_every_interval(engines: list[Engine]) -> None:
    rec = Recorder()
    engine = make_engine([spec(interval="1s")], fake_kind(rec, quick))
    t0 = await started(engines, engine)
    await wait_for(lambda: len(engine.store.history("fake.one")) >= 3, timeout_s=4)

    assert rec.starts[0] - t0 < SPREAD_S + 0.25, "the first run waits for no interval"
    gaps = [b - a for a, b in zip(rec.starts, rec.starts[1:], strict=False)][:2]
    assert all(0.8 < gap < 1.25 for gap in gaps), gaps
    history = engine.store.history("fake.one")
    assert [texts(r) for r in history[:3]] == [[OK_LINE.text]] * 3
    assert all(r.grade is Grade.GREEN for r in history)
    stamps = [r.collected_at_ms for r in history]
    assert stamps == sorted(stamps)
    newest = engine.store.newest("fake.one")
    assert newest is not None
    assert newest.collected_at_ms == history[-1].collected_at_ms


async def test_first_runs_of_many_specs_are_staggered_within_the_spread(
    engines: list[Engine],
) -> None:
    spread_s = 0.6
    recorders = {sid: Recorder() for sid in ("fake.a", "fake.b", "fake.c")}

    async def by_id(s: SpecBase, ctx: ProbeContext, rec: Recorder) -> None:
        recorders[s.service_id].enter()
        recorders[s.service_id].leave()

    engine = make_engine(
        [spec(sid, interval="5s") for sid in recorders],
        fake_kind(Recorder(), by_id),
        first_run_spread_s=spread_s,
    )
    t0 = await started(engines, engine)
    await wait_for(lambda: all(r.starts for r in recorders.values()), timeout_s=spread_s + 1)

    firsts = sorted(r.starts[0] - t0 for r in recorders.values())
    assert firsts[-1] < spread_s + 0.25, firsts
    assert firsts[-1] - firsts[0] > spread_s / 4, f"first runs not spread: {firsts}"


async def test_never_two_runs_of_one_spec_at_once(engines: list[Engine]) -> None:
    async def stubborn(s: SpecBase, ctx: ProbeContext, rec: Recorder) -> None:
        # Like a client library that finishes its I/O before honouring a cancellation: the
        # run lasts 0.5 s (timeout) + 1.2 s, longer than the 1 s interval.
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(1.2)
            raise

    rec = Recorder()
    engine = make_engine([spec(interval="1s", timeout="500ms")], fake_kind(rec, stubborn))
    await started(engines, engine)
    await wait_for(lambda: len(rec.starts) >= 2, timeout_s=4)

    assert rec.max_active == 1, "a run started while the previous one still ran"
    assert rec.starts[1] - rec.starts[0] >= 1.6
    (first,) = engine.store.history("fake.one")[:1]
    assert texts(first) == ["- no answer within 500ms (probe timeout)"]


async def test_unexpected_exception_is_a_red_result_and_the_schedule_goes_on(
    engines: list[Engine], caplog: pytest.LogCaptureFixture
) -> None:
    async def fails_once(s: SpecBase, ctx: ProbeContext, rec: Recorder) -> None:
        if len(rec.starts) == 1:
            raise RuntimeError("boom on the first run")

    rec = Recorder()
    engine = make_engine([spec(interval="1s")], fake_kind(rec, fails_once))
    await started(engines, engine)
    await wait_for(lambda: len(engine.store.history("fake.one")) >= 2, timeout_s=3)

    failed, recovered = engine.store.history("fake.one")[:2]
    assert failed.grade is Grade.RED
    assert texts(failed) == ["- probe failed unexpectedly: RuntimeError: boom on the first run"]
    assert failed.outcome == "error"
    assert recovered.grade is Grade.GREEN
    assert all(check.ok for check in engine.process_health())
    # The bug is logged with its traceback for the developers.
    assert any(r.exc_info and r.levelno >= logging.ERROR for r in caplog.records)


async def test_probe_that_never_returns_is_cut_at_its_timeout(engines: list[Engine]) -> None:
    rec = Recorder()
    engine = make_engine([spec(interval="2s", timeout="1s")], fake_kind(rec, forever))
    t0 = await started(engines, engine)
    await wait_for(lambda: engine.store.newest("fake.one") is not None, timeout_s=2)
    took_s = time.monotonic() - t0

    result = engine.store.newest("fake.one")
    assert result is not None
    assert texts(result) == ["- no answer within 1s (probe timeout)"]
    assert result.grade is Grade.RED
    assert result.reached_target is False
    assert 1.0 <= result.duration_s < 1.3
    assert took_s < 1.0 + SPREAD_S + 0.3
    assert rec.cancelled == 1, "the probe itself was stopped, not left running"
    assert rec.active == 0


async def test_stop_cancels_runs_in_flight_quickly_and_closes_clients(
    engines: list[Engine], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def holds_a_client(s: SpecBase, ctx: ProbeContext, rec: Recorder) -> None:
        rec.clients.append(await ctx.mongo.get("db"))
        await asyncio.sleep(30)

    rec = Recorder()
    environ = {"ZEROPROBE_CONNECTION_DB": f"mongodb://127.0.0.1:{port}/?directConnection=true"}
    engine = make_engine(
        [spec(interval="60s", timeout="45s")], fake_kind(rec, holds_a_client), environ
    )
    await started(engines, engine)
    await asyncio.wait_for(rec.started.wait(), timeout=2)
    await wait_for(lambda: len(rec.clients) == 1, timeout_s=2)
    assert engine.mongo.open_labels == ["db"]
    caplog.clear()

    stopping = time.monotonic()
    await engine.stop()
    assert time.monotonic() - stopping < 0.5

    assert rec.cancelled == 1, "the probe saw CancelledError"
    assert rec.active == 0
    # A cancelled run is not a result: the next process starts over.
    assert engine.store.newest("fake.one") is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert engine.mongo.open_labels == []
    (client,) = rec.clients
    with pytest.raises(mongo_errors.InvalidOperation):
        await client.admin.command("ping")


# Health checks ----------------------------------------------------------------------------


async def test_readiness_waits_for_the_first_round(engines: list[Engine]) -> None:
    async def slowish(s: SpecBase, ctx: ProbeContext, rec: Recorder) -> None:
        await asyncio.sleep(0.3)

    rec = Recorder()
    engine = make_engine(
        [spec("fake.a", interval="5s"), spec("fake.b", interval="5s")], fake_kind(rec, slowish)
    )
    assert not all(check.ok for check in engine.readiness())
    await started(engines, engine)
    await wait_for(lambda: len(rec.starts) == 2, timeout_s=1)
    not_yet = [check for check in engine.readiness() if not check.ok]
    assert not_yet, "ready before any probe finished"
    assert all(check.reason for check in not_yet)

    await wait_for(lambda: engine.store.newest("fake.b") is not None, timeout_s=2)
    await wait_for(lambda: engine.store.newest("fake.a") is not None, timeout_s=2)
    assert all(check.ok for check in engine.readiness()), engine.readiness()


async def test_process_health_follows_the_scheduler(engines: list[Engine]) -> None:
    engine = make_engine([spec(interval="5s")], fake_kind(Recorder(), quick))
    assert not all(check.ok for check in engine.process_health())
    await started(engines, engine)
    assert all(check.ok for check in engine.process_health()), engine.process_health()

    await engine.stop()
    failing = [check for check in engine.process_health() if not check.ok]
    assert failing
    assert all(check.reason for check in failing)


async def test_liveness_no_result_yet_is_failing() -> None:
    engine = make_engine([spec()], fake_kind(Recorder(), quick, liveness_needs_target=True))
    (check,) = engine.liveness()
    assert check.name == "fake.one"
    assert check.ok is False
    assert check.reason


async def test_liveness_fresh_reachable_result_is_ok() -> None:
    engine = make_engine([spec()], fake_kind(Recorder(), quick, liveness_needs_target=True))
    result = await engine.run_once("fake.one")
    assert result.reached_target is True
    (check,) = engine.liveness()
    assert check.ok is True, check


async def test_liveness_unreachable_target_is_failing_with_the_reason() -> None:
    async def refused(s: SpecBase, ctx: ProbeContext, rec: Recorder) -> None:
        raise ProbeConnectionError("cannot connect to db1:27017: connection refused")

    engine = make_engine([spec()], fake_kind(Recorder(), refused, liveness_needs_target=True))
    result = await engine.run_once("fake.one")
    assert texts(result) == ["- cannot connect to db1:27017: connection refused"]
    (check,) = engine.liveness()
    assert check.ok is False
    assert "connection refused" in check.reason


async def test_liveness_ignores_reachability_of_kinds_without_a_server() -> None:
    async def refused(s: SpecBase, ctx: ProbeContext, rec: Recorder) -> None:
        raise ProbeConnectionError("cannot reach the CI server")

    engine = make_engine([spec()], fake_kind(Recorder(), refused, liveness_needs_target=False))
    result = await engine.run_once("fake.one")
    assert result.grade is Grade.RED
    (check,) = engine.liveness()
    assert check.ok is True, check


@pytest.mark.parametrize(
    ("age_s", "ok"), [(10, True), (40, False), (3600, False)], ids=["10s", "40s", "1h"]
)
async def test_liveness_fails_when_the_newest_result_is_too_old(age_s: int, ok: bool) -> None:
    engine = make_engine(
        [spec(interval="2s", timeout="1s")],
        fake_kind(Recorder(), quick, liveness_needs_target=True),
        liveness_max_age_s=30,
    )
    engine.store.put(
        Result.build(
            service_id="fake.one",
            kind=KIND,
            lines=[OK_LINE],
            collected_at_ms=now_ms() - age_s * 1000,
            duration_s=0.01,
            outcome="success",
            reached_target=True,
        )
    )
    (check,) = engine.liveness()
    assert check.ok is ok, check
    if not ok:
        assert "old" in check.reason


# The store --------------------------------------------------------------------------------


def result_no(number: int, service_id: str = "svc") -> Result:
    grade = (Grade.GREEN, Grade.YELLOW, Grade.RED)[number % 3]
    return Result.build(
        service_id=service_id,
        kind=KIND,
        lines=[Line(f"- run {number}", grade), Line("- an arbiter", None)],
        collected_at_ms=1_763_776_800_000 + number,
        duration_s=0.001,
        outcome="success",
        reached_target=True,
    )


def test_store_keeps_the_newest_sixty_results_per_id() -> None:
    assert HISTORY_SIZE == 60
    store = ResultStore()
    store.track(["svc", "other"])
    results = [result_no(n) for n in range(75)]
    for result in results:
        store.put(result)
    store.put(result_no(0, "other"))

    history = store.history("svc")
    assert len(history) == 60
    assert [(r.collected_at_ms, r.grade, r.action_body) for r in history] == [
        (r.collected_at_ms, r.grade, r.action_body) for r in results[15:]
    ]
    assert store.newest("svc") is results[-1]
    assert [r.action_body for r in store.history("other")] == ["- run 0\n- an arbiter"]
    other = store.newest("other")
    assert other is not None
    assert other.service_id == "other"
    # Untracked ids are not kept.
    store.put(result_no(1, "ghost"))
    assert store.newest("ghost") is None
    assert store.history("ghost") == []


def test_document_is_the_rendered_zero_problem_document_rendered_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, ...]] = []

    def counting(*args: Any) -> bytes:
        calls.append(args)
        return render_document(*args)

    monkeypatch.setattr(store_module, "render_document", counting)
    store = ResultStore()
    store.track(["svc"])
    result = result_no(2)  # RED
    store.put(result)
    assert len(calls) == 1

    expected = render_document("svc", Grade.RED, result.collected_at_ms, "- run 2\n- an arbiter")
    first = store.newest("svc")
    second = store.newest("svc")
    assert first is not None
    assert second is not None
    assert first.document == expected
    assert first.document is second.document
    assert len(calls) == 1, "reading a result must not render it again"
