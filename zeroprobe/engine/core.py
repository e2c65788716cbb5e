"""The engine: specs, scheduler, runner, store and shared clients of one service instance."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from probes.base import Kind, ProbeContext
from probes.connections import MongoClients
from probes.http_client import HttpClient
from probes.redact import Redactor, learn_spec_secrets
from schemas.context_spec import ConnectedSpec, SpecBase
from schemas.durations import format_duration
from zeroprobe import __version__
from zeroprobe.config.kinds import installed_kinds
from zeroprobe.config.loader import ContextFile
from zeroprobe.config.notifiers import Notifiers, NotifiersReport, load_notifiers
from zeroprobe.config.settings import Settings, result_age_limit_s
from zeroprobe.engine.metrics import ClusterMetrics, Metrics
from zeroprobe.engine.runner import ChangeHook, ProbeRunner, now_ms
from zeroprobe.engine.store import Result, ResultStore

log = logging.getLogger(__name__)

# A job whose planned start is this far in the past means the scheduler has stalled.
SCHEDULER_STALL_S = 30.0

# First runs start at most this many per second: many specs spread over more than
# first_run_spread_s (up to a whole interval), so they never all fire in the same seconds.
MAX_FIRST_STARTS_PER_S = 200.0


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


@dataclass(frozen=True, slots=True)
class ReloadSummary:
    """What applying a new set of specs did, by service id (each tuple sorted)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    def as_json(self) -> dict[str, list[str]]:
        """The summary as it appears in the answer of POST /-/reload."""
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
            "unchanged": list(self.unchanged),
        }

    def __str__(self) -> str:
        parts = [
            f"{what} {', '.join(ids)}"
            for what, ids in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
            )
            if ids
        ]
        return "; ".join([*(parts or ["no change"]), f"{len(self.unchanged)} unchanged"])


class Engine:
    """Owns everything that runs; the HTTP layer only reads from it."""

    def __init__(
        self,
        contexts: Sequence[ContextFile],
        settings: Settings,
        environ: Mapping[str, str],
        kinds: Mapping[str, Kind[Any, Any]] | None = None,
        redact: Redactor | None = None,
        *,
        notifiers: Notifiers | None = None,
    ) -> None:
        self.settings = settings
        #: Shards and replicas: this pod schedules only the ids its shard owns (topology.py).
        self.topology = settings.topology
        # The installed kinds (entry points, plugins included) unless a test passes its own.
        self.kinds = installed_kinds().kinds if kinds is None else kinds
        self.environ = environ
        # The CLI passes the redactor of its log handler, so that secrets the probes learn
        # (bearer tokens, Basic headers) are scrubbed from log records too.
        self.redact = redact if redact is not None else Redactor.from_environ(environ)
        self.metrics = Metrics(self.redact, self.kinds.values())
        self.store = ResultStore()
        self.mongo = MongoClients(environ, self.redact)
        # One HTTP session for every HTTP-backed probe; opened by the first request.
        self.http = HttpClient(environ, self.redact, user_agent=f"zeroprobe/{__version__}")
        ctx = ProbeContext(mongo=self.mongo, redact=self.redact, http=self.http)
        self.runner = ProbeRunner(self.kinds, ctx, self.store, self.metrics)
        self.contexts: dict[str, ContextFile] = {cf.spec.service_id: cf for cf in contexts}
        learn_spec_secrets(self.redact, (cf.spec for cf in contexts), environ, self.kinds)
        self.store.track(self.contexts)
        self.metrics.specs_loaded.set(len(self.contexts))
        self.metrics.record_config_load(True)
        self.cluster_metrics = (
            None if self.topology.single else ClusterMetrics(self.metrics.registry, self.topology)
        )
        self._count_owned()
        self._scheduler: AsyncIOScheduler | None = None
        # The run in flight of each service id (at most one: max_instances=1).
        self._inflight: dict[str, asyncio.Task[object]] = {}
        self._first_round_done = False
        # Planned first start (epoch seconds) and interval of each scheduled id: a run's
        # planned start follows from them, for the start-delay histogram.
        self._plan: dict[str, tuple[float, float]] = {}
        #: The notifiers file as loaded (at start, then by each reload); its URLs are secrets.
        self.notifiers = notifiers
        for secret in notifiers.secrets if notifiers else ():
            self.redact.add(secret)
        #: Called after a reload applied a (possibly changed) notifiers file.
        self.on_notifiers: list[Callable[[Notifiers | None], Awaitable[None]]] = []

    @property
    def on_change(self) -> list[ChangeHook]:
        """Subscribers to published colour changes (ProbeRunner.on_change)."""
        return self.runner.on_change

    def load_notifiers(self) -> NotifiersReport:
        """Read the notifiers file of the settings again (blocking: call in a thread)."""
        return load_notifiers(self.settings.notifiers, self.environ)

    async def apply_notifiers(self, notifiers: Notifiers | None) -> None:
        """Take a valid notifiers file read by a reload, and tell the subscribers."""
        for secret in notifiers.secrets if notifiers else ():
            self.redact.add(secret)
        self.notifiers = notifiers
        for hook in self.on_notifiers:
            await hook(notifiers)

    async def start(self) -> None:
        """Schedule every spec: first runs spread over a few seconds, then every interval."""
        scheduler = AsyncIOScheduler(
            timezone=dt.UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        ordered = sorted(sid for sid in self.contexts if self.owns(sid))
        self._schedule(scheduler, ordered)
        scheduler.start()
        self._scheduler = scheduler
        if not self.topology.single:
            log.info(
                "%s; %d of %d service(s) owned",
                self.topology.describe(),
                len(ordered),
                len(self.contexts),
            )
        log.info("probing %d service(s): %s", len(ordered), ", ".join(ordered) or "none")

    def _schedule(self, scheduler: AsyncIOScheduler, service_ids: Sequence[str]) -> None:
        """First runs spread over a few seconds (not all at once), then every interval."""
        now = dt.datetime.now(dt.UTC)
        paced_s = len(service_ids) / MAX_FIRST_STARTS_PER_S
        for index, service_id in enumerate(service_ids):
            spec = self.contexts[service_id].spec
            spread_s = min(max(self.settings.first_run_spread_s, paced_s), spec.interval_s)
            first = now + dt.timedelta(seconds=spread_s * index / max(1, len(service_ids)))
            self._plan[service_id] = (first.timestamp(), spec.interval_s)
            scheduler.add_job(
                # The plain function (its signature worked out once, below), not the bound
                # method, whose signature inspect rebuilds at every add_job.
                Engine._run_job,
                IntervalTrigger(seconds=spec.interval_s, start_date=first, timezone=dt.UTC),
                args=[self, service_id],
                id=service_id,
                name=service_id,
                next_run_time=first,
            )

    async def _run_job(self, service_id: str) -> None:
        context = self.contexts.get(service_id)
        task = asyncio.current_task()
        if context is None or task is None:
            return
        plan = self._plan.get(service_id)
        if plan is not None:
            first_s, interval_s = plan
            late_s = time.time() - first_s
            # Planned starts are first + k * interval; a run is never a whole interval late
            # (coalesce=True), so the remainder is how late this one started.
            self.metrics.start_delay.observe(late_s % interval_s if late_s > 0 else 0.0)
        self._inflight[service_id] = task
        try:
            await self.runner.run(context.spec)
        except asyncio.CancelledError:
            # Only stop() and apply() cancel a scheduled run. Let it end quietly: APScheduler
            # would log the cancellation as a job error with a traceback.
            log.info("%s: run cancelled (stopping, or its spec was removed or changed)", service_id)
        finally:
            if self._inflight.get(service_id) is task:
                del self._inflight[service_id]

    async def run_once(self, service_id: str) -> Result:
        """Run one probe now, outside the schedule (`zeroprobe run`)."""
        return await self.runner.run(self.contexts[service_id].spec)

    async def stop(self) -> None:
        """Stop scheduling, cancel runs in flight, close shared clients."""
        scheduler = self._scheduler
        if scheduler is not None and scheduler.running:
            # No job is submitted from here on. One submitted in this loop turn is a task that
            # has not run its first step (where _run_job records it as in flight): two turns
            # let it, so that it is cancelled below, inside _run_job, quietly. APScheduler's
            # own shutdown cancels the tasks it still holds, and one cancelled before it
            # started would be logged as a job error with a traceback.
            scheduler.pause()
            for _ in range(2):
                await asyncio.sleep(0)
        inflight = list(self._inflight.values())
        for task in inflight:
            task.cancel()
        if inflight:
            await asyncio.wait(inflight, timeout=self.settings.shutdown_timeout_s)
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            # AsyncIOScheduler.shutdown only schedules the shutdown on the loop: let it happen
            # now, so that the scheduler is stopped before the clients close.
            await asyncio.sleep(0)
        await self.http.close()
        try:
            # A server that never answers endSessions must not hold up the exit.
            async with asyncio.timeout(self.settings.shutdown_timeout_s):
                await self.mongo.close()
        except TimeoutError:
            log.warning(
                "closing MongoDB clients took over %ss; exiting anyway",
                self.settings.shutdown_timeout_s,
            )

    # Reloading ----------------------------------------------------------------------------

    async def apply(self, contexts: Sequence[ContextFile]) -> ReloadSummary:
        """Switch to a new, valid set of specs; the caller serializes calls (reload.py).

        Added specs are scheduled at once. Removed ones stop and vanish from the store and the
        metrics. Changed ones (a field other than `description` differs) stop and start afresh:
        new schedule, empty history. Unchanged ones keep their results, history and schedule,
        so a PUT for them never sees a gap; their new description and Markdown body are taken.
        Clients no remaining spec uses are closed.
        """
        new = {cf.spec.service_id: cf for cf in contexts}
        learn_spec_secrets(self.redact, (cf.spec for cf in contexts), self.environ, self.kinds)
        old = self.contexts
        kept = new.keys() & old.keys()
        changed = {sid for sid in kept if _probing(new[sid].spec) != _probing(old[sid].spec)}
        summary = ReloadSummary(
            added=tuple(sorted(new.keys() - old.keys())),
            removed=tuple(sorted(old.keys() - new.keys())),
            changed=tuple(sorted(changed)),
            unchanged=tuple(sorted(kept - changed)),
        )
        # Probes added later do not make a ready instance unready (a Service would drop it).
        self._first_round_pending()
        stopping = [*summary.removed, *summary.changed]
        for service_id in stopping:
            if self._scheduler is not None:
                with contextlib.suppress(JobLookupError):
                    self._scheduler.remove_job(service_id)
        await self._cancel_runs(stopping)
        # No await from here to the scheduling: readers see the old set or the new one.
        self.contexts = new
        self.store.reset(summary.changed)
        self.store.track(new)
        for service_id in stopping:
            self._plan.pop(service_id, None)
            self.metrics.forget(service_id, self.kinds.get(old[service_id].spec.kind))
        self.metrics.specs_loaded.set(len(new))
        self._count_owned()
        if self._scheduler is not None and self._scheduler.running:
            starting = [sid for sid in (*summary.added, *summary.changed) if self.owns(sid)]
            self._schedule(self._scheduler, starting)
        await self._close_unused_clients()
        return summary

    async def _cancel_runs(self, service_ids: Sequence[str]) -> None:
        tasks = [task for sid in service_ids if (task := self._inflight.get(sid)) is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_timeout_s)
            if pending:
                log.warning("%d cancelled probe run(s) still running", len(pending))

    async def _close_unused_clients(self) -> None:
        in_use = {
            cf.spec.connection
            for cf in self.contexts.values()
            if isinstance(cf.spec, ConnectedSpec)
        }
        for label in self.mongo.open_labels:
            if label in in_use:
                continue
            try:
                async with asyncio.timeout(self.settings.shutdown_timeout_s):
                    await self.mongo.close_label(label)
            except TimeoutError:
                log.warning("closing the MongoDB client of %r took too long", label)
            else:
                log.info("closed the MongoDB client of %r: no spec uses it any more", label)

    # Reads for the HTTP layer -------------------------------------------------------------

    def knows(self, service_id: str) -> bool:
        """True when `service_id` is a loaded spec."""
        return service_id in self.contexts

    def owns(self, service_id: str) -> bool:
        """True when this pod's shard probes `service_id` (always, without a cluster)."""
        return self.topology.owns(service_id)

    def _count_owned(self) -> None:
        if self.cluster_metrics is not None:
            owned = sum(1 for sid in self.contexts if self.owns(sid))
            self.cluster_metrics.owned_specs.set(owned)

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
        pending = self._first_round_pending()
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

    def _first_round_pending(self) -> list[str]:
        """Probes of the first round after start without a result yet; once none, always none."""
        if self._first_round_done:
            return []
        # Only the ids this pod probes; a result from a sibling replica (warm start) counts.
        pending = [
            sid for sid in self.contexts if self.owns(sid) and self.store.newest(sid) is None
        ]
        self._first_round_done = not pending
        return pending

    def liveness(self) -> list[Check]:
        """The Zero Problem collector contract: targets reached and results fresh (for the
        ids this pod's shard owns; web/cluster.py merges the other shards' checks)."""
        checks = []
        now = now_ms()
        for service_id in sorted(self.contexts):
            if not self.owns(service_id):
                continue
            spec = self.contexts[service_id].spec
            newest = self.store.newest(service_id)
            if newest is None:
                checks.append(Check(service_id, False, "no result yet"))
                continue
            limit_s = result_age_limit_s(self.settings, spec.interval_s, spec.timeout_s)
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


# APScheduler checks a job's function against its arguments at every add_job, working out
# its signature each time: worked out once here, scheduling 10,000 specs costs half as much.
Engine._run_job.__signature__ = inspect.signature(Engine._run_job)  # type: ignore[attr-defined]


def _probing(spec: SpecBase) -> dict[str, object]:
    """What a spec tells the probe to do: every field but the description, which is for
    people, and the alert labels, which are for Alertmanager."""
    return spec.model_dump(exclude={"description", "labels"})
