"""Running one probe once: timeout, exception mapping, grading, metrics, store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from probes.base import ProbeContext, ProbeKind
from schemas.context_spec import SpecBase
from zeroprobe.damping import Verdict, damp
from zeroprobe.durations import format_duration
from zeroprobe.errors import ProbeError
from zeroprobe.grading import Grade, Line, worst
from zeroprobe.metrics import Metrics
from zeroprobe.store import Result, ResultStore

log = logging.getLogger(__name__)


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
        kinds: Mapping[str, ProbeKind],
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
        except Exception as exc:
            # A bug of ours or an unmapped library error: still a RED line, never a dead job.
            log.exception("probe %s raised unexpectedly", spec.service_id)
            message = self._ctx.redact(f"{type(exc).__name__}: {exc}")
            lines = [Line(f"- probe failed unexpectedly: {message}", Grade.RED)]
            outcome = "error"
        duration_s = time.perf_counter() - started
        # Every line, not only error lines: a graded line quotes what a target said (an alert
        # annotation, a label value, a run URL), and a target may echo a credential.
        lines = [Line(self._ctx.redact(line.text), line.grade) for line in lines]
        result = self._conclude(spec, lines, duration_s, outcome, reached_target)
        self._record(spec, kind, result, observation)
        return result

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
        self, spec: SpecBase, kind: ProbeKind, result: Result, observation: object | None
    ) -> None:
        # Status, duration, runs and last success are exported from the store (metrics.py).
        previous = self._store.newest(spec.service_id)
        self._store.put(result)
        self._metrics.run_duration.observe(result.duration_s)
        if observation is not None:
            if kind.export is not None:
                kind.export(observation, spec, self._metrics)
        elif kind.forget is not None:
            kind.forget(spec.service_id, self._metrics)

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
        elif result.outcome != "success" and previous.action_body != result.action_body:
            log.warning("%s: %s", spec.service_id, _worst_line(result))


def _worst_line(result: Result) -> str:
    graded = [line for line in result.lines if line.grade is result.grade]
    return (graded[0] if graded else result.lines[0]).text.removeprefix("- ")
