"""Running one probe once: timeout, exception mapping, grading, metrics, store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from probes.base import Kind, ProbeContext
from probes.errors import ProbeError
from schemas.context_spec import SpecBase
from schemas.durations import format_duration
from schemas.grading import Grade, Line, worst
from zeroprobe.engine.damping import Verdict, damp
from zeroprobe.engine.metrics import Metrics
from zeroprobe.engine.store import Result, ResultStore

log = logging.getLogger(__name__)

#: A subscriber to published colour changes: (spec, new result, previous colour or None).
ChangeHook = Callable[[SpecBase, Result, Grade | None], None]


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


class ProbeRunner:
    """Runs a spec's probe within its timeout and turns whatever happens into a Result.

    A probe only measures; the runner owns the timeout, the exceptions and the metrics,
    so no target can crash the service or stop the scheduler.
    """

    def __init__(
        self,
        kinds: Mapping[str, Kind[Any, Any]],
        ctx: ProbeContext,
        store: ResultStore,
        metrics: Metrics,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._kinds = kinds
        self._ctx = ctx
        self._store = store
        self._metrics = metrics
        self._clock_ms = clock_ms
        #: Called with (spec, result, previous published colour or None) whenever a run
        #: publishes a colour other than the one before (the first result included): the
        #: published colour changes, after flap damping, that notifications are made of.
        self.on_change: list[ChangeHook] = []
        metrics.publish_results(store)

    async def run(self, spec: SpecBase) -> Result:
        """Run `spec`'s probe once, store and return the graded result."""
        kind = self._kinds[spec.kind]
        started = time.perf_counter()
        reached_target = False
        observation: object | None = None
        try:
            async with asyncio.timeout(spec.timeout_s):
                observation = await kind.probe(spec, self._ctx)
            lines = kind.grade(observation, spec)
            outcome, reached_target = "success", True
        except TimeoutError:
            lines = [
                Line(
                    f"- no answer within {format_duration(spec.timeout_s)} (probe timeout)",
                    Grade.RED,
                )
            ]
            outcome = "timeout"
        except ProbeError as exc:
            lines = [Line(f"- {self._ctx.redact(str(exc))}", Grade.RED)]
            outcome, reached_target = "error", exc.reached_target
            untangle(exc)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            # A bug (ours or a plugin's, even a SystemExit) or an unmapped library error:
            # still a RED line, never a dead job or a dead service.
            log.exception("probe %s raised unexpectedly", spec.service_id)
            message = self._ctx.redact(f"{type(exc).__name__}: {exc}")
            lines = [Line(f"- probe failed unexpectedly: {message}", Grade.RED)]
            outcome = "error"
            untangle(exc)
        duration_s = time.perf_counter() - started
        # Every line, not only error lines: a graded line quotes what a target said (an alert
        # annotation, a label value, a run URL), and a target may echo a credential.
        lines = self._redacted(lines)
        result = self._conclude(spec, lines, duration_s, outcome, reached_target)
        self._record(spec, kind, result, observation)
        return result

    def _redacted(self, lines: list[Line]) -> list[Line]:
        """`lines` with secrets scrubbed. Almost every run has none: the lines are scrubbed
        as one text first, and one by one only when that finds something (a secret found in
        a line is found in the joined text, and a text the scrubber leaves alone has none)."""
        if self._ctx.redact(joined := "\n".join(line.text for line in lines)) == joined:
            return lines
        return [Line(self._ctx.redact(line.text), line.grade) for line in lines]

    def _conclude(
        self,
        spec: SpecBase,
        lines: list[Line],
        duration_s: float,
        outcome: str,
        reached_target: bool,
    ) -> Result:
        """The result to publish: the measured lines, the colour after flap damping."""
        previous = self._store.newest(spec.service_id)
        measured = worst(lines)
        if previous is None:
            verdict = Verdict(measured)
        else:
            verdict = damp(previous.grade, previous.pending, previous.agree, measured, spec.confirm)
        note = verdict.note(spec.confirm)
        if note is not None:
            lines = [*lines, note]
        return Result.build(
            service_id=spec.service_id,
            kind=spec.kind,
            lines=lines,
            collected_at_ms=self._clock_ms(),
            duration_s=duration_s,
            outcome=outcome,
            reached_target=reached_target,
            grade=verdict.published,
            pending=verdict.pending,
            agree=verdict.agree,
        )

    def _record(
        self, spec: SpecBase, kind: Kind[Any, Any], result: Result, observation: object | None
    ) -> None:
        # Status, duration, runs and last success are exported from the store (metrics.py).
        previous = self._store.newest(spec.service_id)
        self._store.put(result)
        self._metrics.run_duration.observe(result.duration_s)
        if kind.metrics:
            self._metrics.export_kind(spec.service_id, kind, observation, spec)

        if previous is None or previous.grade != result.grade:
            before = previous.grade.value if previous else "none"
            level = logging.INFO if result.grade is Grade.GREEN else logging.WARNING
            log.log(
                level,
                "%s: %s -> %s: %s",
                spec.service_id,
                before,
                result.grade.value,
                _worst_line(result),
            )
            for hook in self.on_change:
                try:
                    hook(spec, result, previous.grade if previous else None)
                except Exception:  # a subscriber's bug must not fail the run
                    log.exception("%s: a colour-change subscriber failed", spec.service_id)
        elif result.outcome != "success" and previous.action_body != result.action_body:
            log.warning("%s: %s", spec.service_id, _worst_line(result))


def untangle(exc: BaseException) -> None:
    """Drop the tracebacks of `exc` and of the exceptions it was raised from or during.

    A traceback holds the frames it passed through, and such a frame often holds the
    exception in a variable (a library keeping it to raise another one from it): a reference
    cycle, so the chain of a failed run, its frames and their locals wait for the garbage
    collector, not for the end of the run. With 1,000 runs failing at once that made
    collections of up to 15 ms, each stopping the event loop (and every PUT) while it lasts;
    without their tracebacks, the exceptions and frames go as soon as the run is done."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _worst_line(result: Result) -> str:
    graded = [line for line in result.lines if line.grade is result.grade]
    return (graded[0] if graded else result.lines[0]).text.removeprefix("- ")
