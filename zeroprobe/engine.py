"""The engine: specs, scheduler, runner, store and shared clients of one service instance."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from probes.base import ProbeContext, ProbeKind
from probes.registry import PROBES
from zeroprobe.connections import MongoClients
from zeroprobe.durations import format_duration
from zeroprobe.loader import ContextFile
from zeroprobe.metrics import Metrics
from zeroprobe.redact import Redactor
from zeroprobe.runner import ProbeRunner, now_ms
from zeroprobe.settings import Settings
from zeroprobe.store import Result, ResultStore

log = logging.getLogger(__name__)

# A job whose planned start is this far in the past means the scheduler has stalled.
SCHEDULER_STALL_S = 30.0


@dataclass(frozen=True, slots=True)
class Check:
    """One named health check and, when it fails, why."""

    name: str
    ok: bool
    reason: str = ""

    def as_json(self) -> dict[str, object]:
        """The check as it appears in the JSON body of a health endpoint."""
        body: dict[str, object] = {"name": self.name, "ok": self.ok}
        if self.reason:
            body["reason"] = self.reason
        return body


class Engine:
    """Owns everything that runs; the HTTP layer only reads from it."""

    def __init__(
        self,
        contexts: Sequence[ContextFile],
        settings: Settings,
        environ: Mapping[str, str],
        kinds: Mapping[str, ProbeKind] = PROBES,
    ) -> None:
        self.settings = settings
        self.kinds = kinds
        self.redact = Redactor.from_environ(environ)
        self.metrics = Metrics()
        self.store = ResultStore()
        self.mongo = MongoClients(environ, self.redact)
        self.runner = ProbeRunner(
            kinds, ProbeContext(mongo=self.mongo, redact=self.redact), self.store, self.metrics
        )
        self.contexts: dict[str, ContextFile] = {cf.spec.service_id: cf for cf in contexts}
        self.store.track(self.contexts)
        self.metrics.specs_loaded.set(len(self.contexts))
        self._scheduler: AsyncIOScheduler | None = None
        self._inflight: set[asyncio.Task[object]] = set()

    async def start(self) -> None:
        """Schedule every spec: first runs spread over a few seconds, then every interval."""
        scheduler = AsyncIOScheduler(
            timezone=dt.UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        ordered = sorted(self.contexts)
        now = dt.datetime.now(dt.UTC)
        for index, service_id in enumerate(ordered):
            spec = self.contexts[service_id].spec
            spread_s = min(self.settings.first_run_spread_s, spec.interval_s)
            first = now + dt.timedelta(seconds=spread_s * index / max(1, len(ordered)))
            scheduler.add_job(
                self._run_job,
                IntervalTrigger(seconds=spec.interval_s, start_date=first, timezone=dt.UTC),
                args=[service_id],
                id=service_id,
                name=service_id,
                next_run_time=first,
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info("probing %d service(s): %s", len(ordered), ", ".join(ordered) or "none")

    async def _run_job(self, service_id: str) -> None:
        context = self.contexts.get(service_id)
        task = asyncio.current_task()
        if context is None or task is None:
            return
        self._inflight.add(task)
        try:
            await self.runner.run(context.spec)
        except asyncio.CancelledError:
            # Only stop() cancels a scheduled run. Let it end quietly: APScheduler would log
            # the cancellation as a job error with a traceback on every shutdown mid-run.
            log.info("%s: run cancelled at shutdown", service_id)
        finally:
            self._inflight.discard(task)

    async def run_once(self, service_id: str) -> Result:
        """Run one probe now, outside the schedule (`zeroprobe run`)."""
        return await self.runner.run(self.contexts[service_id].spec)

    async def stop(self) -> None:
        """Stop scheduling, cancel runs in flight, close shared clients."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
            # AsyncIOScheduler.shutdown only schedules the shutdown on the loop: let it happen
            # now, so that the scheduler is stopped and no job starts after the clients close.
            await asyncio.sleep(0)
        inflight = list(self._inflight)
        for task in inflight:
            task.cancel()
        if inflight:
            await asyncio.wait(inflight, timeout=self.settings.shutdown_timeout_s)
        try:
            # A server that never answers endSessions must not hold up the exit.
            async with asyncio.timeout(self.settings.shutdown_timeout_s):
                await self.mongo.close()
        except TimeoutError:
            log.warning(
                "closing MongoDB clients took over %ss; exiting anyway",
                self.settings.shutdown_timeout_s,
            )

    # Reads for the HTTP layer -------------------------------------------------------------

    def knows(self, service_id: str) -> bool:
        """True when `service_id` is a loaded spec."""
        return service_id in self.contexts

    def retry_after_s(self, service_id: str) -> int:
        """Seconds until a first result of `service_id` can be expected."""
        spec = self.contexts[service_id].spec
        wait_s = spec.timeout_s
        job = self._scheduler.get_job(service_id) if self._scheduler else None
        if job is not None and job.next_run_time is not None:
            until_s = (job.next_run_time - dt.datetime.now(dt.UTC)).total_seconds()
            wait_s += max(0.0, until_s)
        return max(1, math.ceil(wait_s))

    def readiness(self) -> list[Check]:
        """Contexts loaded and the first round of probes finished."""
        checks = [Check("contexts", True, "")]
        checks.append(self._scheduler_check())
        pending = [sid for sid in self.contexts if self.store.newest(sid) is None]
        checks.append(
            Check(
                "first_round",
                not pending,
                f"waiting for the first result of {len(pending)} probe(s): "
                + ", ".join(sorted(pending)[:10])
                if pending
                else "",
            )
        )
        return checks

    def liveness(self) -> list[Check]:
        """The Zero Problem collector contract: targets reached and results fresh."""
        checks = []
        now = now_ms()
        for service_id in sorted(self.contexts):
            spec = self.contexts[service_id].spec
            newest = self.store.newest(service_id)
            if newest is None:
                checks.append(Check(service_id, False, "no result yet"))
                continue
            limit_s = max(self.settings.liveness_max_age_s, spec.interval_s + spec.timeout_s)
            age_s = (now - newest.collected_at_ms) / 1000
            if age_s > limit_s:
                checks.append(
                    Check(
                        service_id,
                        False,
                        f"newest result is {format_duration(round(age_s))} old "
                        f"(limit {format_duration(limit_s)})",
                    )
                )
            elif self.kinds[spec.kind].liveness_needs_target and not newest.reached_target:
                reason = newest.lines[0].text.removeprefix("- ") if newest.lines else ""
                checks.append(Check(service_id, False, f"target not reached: {reason}"))
            else:
                checks.append(Check(service_id, True))
        return checks

    def process_health(self) -> list[Check]:
        """The process itself (for /livez): the loop answers and the scheduler runs."""
        return [Check("event_loop", True), self._scheduler_check()]

    def _scheduler_check(self) -> Check:
        scheduler = self._scheduler
        if scheduler is None or not scheduler.running:
            return Check("scheduler", False, "scheduler is not running")
        now = dt.datetime.now(dt.UTC)
        overdue = [
            job.id
            for job in scheduler.get_jobs()
            if job.next_run_time is not None
            and (now - job.next_run_time).total_seconds() > SCHEDULER_STALL_S
        ]
        if overdue:
            return Check(
                "scheduler", False, f"{len(overdue)} job(s) overdue by over {SCHEDULER_STALL_S:g}s"
            )
        return Check("scheduler", True)
