"""The notifier: turns published colour changes into transitions, records them in the outbox,
and runs one send loop per sink and one push loop per Alertmanager.

A transition is a published colour (after `confirm` damping) that differs from the colour
last notified for that probe, which the outbox keeps across restarts: so the first result
after a start is a transition only when it differs from what was notified before the stop
(a recovery while zeroprobe was down is announced; a probe still RED is not announced again).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from schemas.context_spec import SpecBase
from schemas.grading import Grade
from zeroprobe.config.notifiers import Notifiers, SinkConfig, SinkTarget
from zeroprobe.engine.core import Engine
from zeroprobe.engine.store import Result
from zeroprobe.notify.alertmanager import AlertmanagerPusher, AlertState
from zeroprobe.notify.delivery import USER_AGENT, Delivery, backoff_s
from zeroprobe.notify.outbox import Notified, Outbox
from zeroprobe.notify.sinks import SINK_TYPES, Sink, SinkContext
from zeroprobe.notify.transitions import Message, Transition, explaining_lines

log = logging.getLogger(__name__)

#: Longest wait between two retries of one message.
DEFAULT_RETRY_MAX_S = 300.0
DEFAULT_RETRY_INITIAL_S = 1.0
#: At stop, how long the last transitions may take to reach the disk.
FLUSH_AT_STOP_S = 3.0
#: Transitions arriving within this time of the first are written in one transaction.
FLUSH_GATHER_S = 0.05


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class SinkStats:
    """What a sink's send loop did (kept across reloads, by sink name)."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0
    pending: int = 0
    oldest_ms: int | None = None
    last_ok_ms: int | None = None
    last_error: str = ""
    failing_since_ms: int | None = None


SinkType = Literal["webhook", "slack", "discord", "apprise", "alertmanager"]
SinkState = Literal["ok", "failing", "no URL"]


@dataclass(frozen=True, slots=True)
class SinkHealth:
    """One sink (or Alertmanager) as the status page shows it: never its URL."""

    name: str
    type: SinkType
    state: SinkState
    detail: str
    pending: int
    oldest_age_s: float | None
    last_ok_ms: int | None
    sent: int
    failed: int
    dropped: int


@dataclass(slots=True)
class _SinkLoop:
    target: SinkTarget
    sink: Sink
    stats: SinkStats
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return self.target.config.name


def wants(config: SinkConfig, transition: Transition) -> bool:
    """Whether a transition concerns a sink: a matching id, and a colour before or after at
    least its `min_status` (a RED sink hears YELLOW→RED, RED→YELLOW and RED→GREEN only)."""
    floor = Grade(config.min_status).rank
    if max(transition.was.rank, transition.new.rank) < floor:
        return False
    return any(fnmatch.fnmatchcase(transition.service_id, glob) for glob in config.match)


class Notifier:
    """Subscribes to the engine's colour changes; owns the outbox and the send loops."""

    def __init__(
        self,
        engine: Engine,
        *,
        retry_initial_s: float = DEFAULT_RETRY_INITIAL_S,
        retry_max_s: float = DEFAULT_RETRY_MAX_S,
        data_dir: str | None = None,
    ) -> None:
        self._engine = engine
        self._notifiers: Notifiers | None = engine.notifiers
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.page_url = engine.settings.page_url
        self.outbox = Outbox(data_dir if data_dir is not None else engine.settings.data_dir)
        self._notified: dict[str, Notified] = {}
        self._incoming: list[tuple[Transition, list[str]]] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._loops: dict[str, _SinkLoop] = {}
        self._stats: dict[str, SinkStats] = {}
        self._pushers: list[AlertmanagerPusher] = []
        self._alerts: AlertState | None = None
        self._session: aiohttp.ClientSession | None = None
        self._started = False
        self.transitions_total: dict[str, int] = {g.value: 0 for g in Grade}
        self.outbox_errors = 0
        engine.on_change.append(self._on_change)
        engine.on_notifiers.append(self._reconfigure)
        engine.metrics.registry.register(_NotifyCollector(self))

    # Life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the outbox, read the last notified colours, start the loops. Before the
        engine starts: the first results are compared with what was notified."""
        await self.outbox.open()
        self._notified = await self.outbox.notified()
        gone = [sid for sid in self._notified if not self._engine.knows(sid)]
        if gone:
            await self.outbox.forget(gone)
            for sid in gone:
                del self._notified[sid]
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
            connector=aiohttp.TCPConnector(limit_per_host=4),
        )
        seed = {
            sid: (n.status, n.since_ms)
            for sid, n in self._notified.items()
            if n.status is not Grade.GREEN
        }
        self._alerts = AlertState(self._engine, self.page_url, seed)
        self._started = True
        await self._configure(self._notifiers)
        pending = sum(s.pending for s in self._stats.values())
        log.info(
            "notifications: %d sink(s), %d Alertmanager(s); outbox %s (%d pending, %d probe(s) "
            "last notified non-GREEN)",
            len(self._loops),
            len(self._pushers),
            self.outbox.path if self.outbox.durable else "in memory only",
            pending,
            len(seed),
        )

    async def stop(self) -> None:
        """After the engine stopped: write the last transitions, stop the loops, close."""
        self._started = False
        if self._flush_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(FLUSH_AT_STOP_S):
                    await asyncio.shield(self._flush_task)
        await self._stop_loops()
        if self._session is not None:
            await self._session.close()
        await self.outbox.close()

    async def _stop_loops(self) -> None:
        tasks = [loop.task for loop in self._loops.values() if loop.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops = {}
        for pusher in self._pushers:
            await pusher.stop()
        self._pushers = []

    async def _reconfigure(self, notifiers: Notifiers | None) -> None:
        """A reload applied the notifiers file (maybe unchanged): restart the loops on it."""
        self._notifiers = notifiers
        if not self._started:
            return
        # Probes removed by the reload are no longer notified of; their alerts resolve.
        gone = [sid for sid in self._notified if not self._engine.knows(sid)]
        if gone:
            await self.outbox.forget(gone)
            for sid in gone:
                del self._notified[sid]
        await self._stop_loops()
        await self._configure(notifiers)

    async def _configure(self, notifiers: Notifiers | None) -> None:
        assert self._session is not None and self._alerts is not None
        targets = notifiers.sinks if notifiers is not None else ()
        dropped = await self.outbox.purge(t.config.name for t in targets)
        for name, count in dropped.items():
            log.warning(
                "sink %s is no longer configured: %d pending transition(s) dropped", name, count
            )
        for target in targets:
            name = target.config.name
            stats = self._stats.setdefault(name, SinkStats())
            loop = _SinkLoop(target, SINK_TYPES[target.config.type](), stats)
            self._loops[name] = loop
            await self._refresh(loop)
            loop.task = asyncio.get_running_loop().create_task(
                self._run_sink(loop), name=f"sink-{name}"
            )
        for name in [n for n in self._stats if n not in self._loops]:
            del self._stats[name]
        am = notifiers.config.alertmanager if notifiers is not None else None
        for index, url in enumerate(am.urls if am is not None else ()):
            assert am is not None
            pusher = AlertmanagerPusher(
                index,
                url,
                config=am,
                state=self._alerts,
                session=self._session,
                redact=self._engine.redact,
                retry_initial_s=self.retry_initial_s,
            )
            self._pushers.append(pusher)
            pusher.start()

    # Transitions --------------------------------------------------------------------------------

    def _on_change(self, spec: SpecBase, result: Result, previous: Grade | None) -> None:
        """The engine published a new colour for a probe (the hook runs on the event loop)."""
        service_id = spec.service_id
        if not self._started or not self._engine.knows(service_id):
            return
        if not self._engine.owns(service_id):
            return  # another shard's id: its owners notify (only owned ids run here anyway)
        last = self._notified.get(service_id)
        # Nothing notified by this pod, but the probe had a colour when it came here: a warm
        # start took it from a sibling or from the id's previous owner (a reshard), which
        # notified it. That colour counts as notified, so an incident still on is not
        # announced twice and its recovery here is announced.
        taken = previous if last is None and previous is not Grade.GREEN else None
        notified = last.status if last else (taken or Grade.GREEN)
        if result.grade is notified:
            return  # what was notified last (maybe before a restart) still holds
        lines = [(line.text, line.grade) for line in result.lines]
        explaining = explaining_lines(lines, result.grade)
        summary = next((t for t, g in lines if g is result.grade), lines[0][0] if lines else "")
        transition = Transition(
            event_id=str(uuid.uuid4()),
            service_id=service_id,
            kind=spec.kind,
            old=last.status if last else taken,
            new=result.grade,
            at_ms=result.collected_at_ms,
            summary=summary.removeprefix("- "),
            lines=explaining,
            description=spec.description,
        )
        self._notified[service_id] = Notified(result.grade, result.collected_at_ms)
        self.transitions_total[result.grade.value] += 1
        # From the configuration, not the running loops: a reload restarts those. In a
        # cluster both replicas of a shard see the change: only replica 0 writes to the direct
        # sinks, so a chat gets one message; every replica pushes to Alertmanager, which
        # deduplicates identical alerts.
        targets = (
            self._notifiers.sinks
            if self._notifiers is not None and self._engine.topology.replica == 0
            else ()
        )
        sinks = [t.config.name for t in targets if wants(t.config, transition)]
        self._incoming.append((transition, sinks))
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush())
        for pusher in self._pushers:
            pusher.poke()

    async def _flush(self) -> None:
        """Write what arrived since the last flush in one transaction (a storm of 500 changes
        is a handful of writes), then wake the sinks concerned."""
        # What arrives within FLUSH_GATHER_S is one transaction: a round's runs spread over
        # seconds, and writing each change alone cost 600-850 transactions for 1,000 probes.
        # A kill meanwhile loses nothing: the colour last notified is not written yet, so
        # the first result after the restart is the transition again.
        await asyncio.sleep(FLUSH_GATHER_S)
        while self._incoming:
            batch, self._incoming = self._incoming, []
            try:
                await self.outbox.record(batch)
            except Exception:
                self.outbox_errors += len(batch)
                log.exception("outbox: %d transition(s) could not be written", len(batch))
                continue
            for name in {sink for _, sinks in batch for sink in sinks}:
                loop = self._loops.get(name)
                if loop is not None:
                    loop.wake.set()

    async def settle(self) -> None:
        """Wait until every transition seen so far is in the outbox (for tests and stop)."""
        while self._flush_task is not None and not self._flush_task.done():
            await asyncio.shield(self._flush_task)

    # A sink's send loop -------------------------------------------------------------------------

    async def _run_sink(self, loop: _SinkLoop) -> None:
        try:
            while True:
                await self._step(loop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sink %s: its send loop stopped", loop.name)

    async def _step(self, loop: _SinkLoop) -> None:
        notifiers = self._notifiers
        assert notifiers is not None
        coalesce_ms = round(notifiers.config.coalesce * 1000)
        max_age_ms = round(notifiers.config.max_age * 1000)
        message = await self.outbox.head(loop.name)
        if message is None:
            oldest = await self.outbox.oldest_unsealed_ms(loop.name)
            await self._refresh(loop)
            if oldest is None:
                await loop.wake.wait()
                loop.wake.clear()
                return
            wait_ms = oldest + coalesce_ms - now_ms()
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000)
            await self.outbox.seal(loop.name, loop.sink.max_transitions)
            return
        age_ms = now_ms() - message.created_ms
        if age_ms > max_age_ms:
            await self._drop(loop, message, age_ms)
            return
        wait_ms = min(message.next_try_ms, message.created_ms + max_age_ms + 1) - now_ms()
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000)
            return  # look again: it may be too old by now
        await self._deliver(loop, message)
        await self._refresh(loop)

    async def _deliver(self, loop: _SinkLoop, message: Message) -> None:
        assert self._session is not None
        target, stats = loop.target, loop.stats
        if target.url is None:
            delivery = Delivery(ok=False, retry=True, detail=target.missing)
        else:
            ctx = SinkContext(self._session, target.url, self.page_url, target.config.timeout)
            delivery = await loop.sink.send(message, ctx)
        at = now_ms()
        detail = self._engine.redact(delivery.detail)
        if delivery.ok:
            await self.outbox.done(message.id)
            stats.sent += 1
            stats.last_ok_ms = at
            if stats.failing_since_ms is not None:
                log.info("sink %s: delivering again", loop.name)
            stats.failing_since_ms = None
            stats.last_error = ""
            return
        if stats.failing_since_ms is None:
            stats.failing_since_ms = at
        changed = detail != stats.last_error
        stats.last_error = detail
        if not delivery.retry:
            await self.outbox.done(message.id)
            stats.failed += 1
            log.error(
                "sink %s refused message %s (%d transition(s)): %s; not retried",
                loop.name,
                message.event_id,
                len(message.transitions),
                detail,
            )
            return
        attempts = message.attempts + 1
        wait_s = backoff_s(attempts, self.retry_initial_s, self.retry_max_s)
        if delivery.retry_after_s is not None:
            wait_s = delivery.retry_after_s
        await self.outbox.defer(message.id, attempts, at + round(wait_s * 1000))
        stats.retried += 1
        log.log(
            logging.WARNING if changed or attempts == 1 else logging.DEBUG,
            "sink %s: message %s not delivered (%s); try %d again in %.1fs",
            loop.name,
            message.event_id,
            detail,
            attempts + 1,
            wait_s,
        )

    async def _drop(self, loop: _SinkLoop, message: Message, age_ms: int) -> None:
        await self.outbox.done(message.id)
        loop.stats.dropped += 1
        log.error(
            "sink %s: message %s (%d transition(s)) dropped undelivered after %.0fs (max_age): %s",
            loop.name,
            message.event_id,
            len(message.transitions),
            age_ms / 1000,
            loop.stats.last_error or "never tried",
        )
        await self._refresh(loop)

    async def _refresh(self, loop: _SinkLoop) -> None:
        backlog = await self.outbox.backlog(loop.name)
        loop.stats.pending = backlog.pending
        loop.stats.oldest_ms = backlog.oldest_ms

    # Reads for the page and /metrics ------------------------------------------------------------

    @property
    def configured(self) -> bool:
        """True when a notifiers file is in use."""
        return self._notifiers is not None

    def health(self) -> list[SinkHealth]:
        """Every sink and Alertmanager with its state, for the status page."""
        now = now_ms()
        rows = []
        for pusher in self._pushers:
            stats = pusher.stats
            failing = stats.failing_since_ms is not None
            rows.append(
                SinkHealth(
                    name=pusher.name,
                    type="alertmanager",
                    state="failing" if failing else "ok",
                    detail=(
                        f"{pusher.shown}: {stats.last_error}"
                        if failing
                        else f"{pusher.shown}: {stats.alerts} alert(s) pushed"
                    ),
                    pending=stats.alerts if failing else 0,
                    oldest_age_s=(now - stats.failing_since_ms) / 1000
                    if failing and stats.failing_since_ms
                    else None,
                    last_ok_ms=stats.last_ok_ms,
                    sent=stats.sent,
                    failed=stats.failed,
                    dropped=0,
                )
            )
        for loop in self._loops.values():
            sink = loop.stats
            state: SinkState
            if loop.target.url is None:
                state, detail = "no URL", loop.target.missing
            elif sink.failing_since_ms is not None:
                state, detail = "failing", sink.last_error
            else:
                state, detail = "ok", ""
            rows.append(
                SinkHealth(
                    name=loop.name,
                    type=loop.target.config.type,
                    state=state,
                    detail=detail,
                    pending=sink.pending,
                    oldest_age_s=(now - sink.oldest_ms) / 1000 if sink.oldest_ms else None,
                    last_ok_ms=sink.last_ok_ms,
                    sent=sink.sent,
                    failed=sink.failed,
                    dropped=sink.dropped,
                )
            )
        return rows

    def sink_stats(self) -> Iterator[tuple[str, str, SinkStats]]:
        """(name, type, stats) of every sink and Alertmanager, for /metrics."""
        for pusher in list(self._pushers):
            s = pusher.stats
            failing = s.failing_since_ms is not None
            yield (
                pusher.name,
                "alertmanager",
                SinkStats(
                    sent=s.sent,
                    failed=s.failed,
                    retried=s.retried,
                    pending=s.alerts if failing else 0,
                    oldest_ms=s.failing_since_ms,
                ),
            )
        for loop in list(self._loops.values()):
            yield loop.name, loop.target.config.type, loop.stats


class _NotifyCollector(Collector):
    """The notification series, read from the notifier on every scrape."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    def describe(self) -> Sequence[Metric]:
        return _Families().all()

    def collect(self) -> Iterator[Metric]:
        f = _Families()
        now = now_ms()
        for name, sink_type, stats in self._notifier.sink_stats():
            labels = [name, sink_type]
            f.sent.add_metric(labels, stats.sent)
            f.failed.add_metric(labels, stats.failed)
            f.retried.add_metric(labels, stats.retried)
            f.dropped.add_metric(labels, stats.dropped)
            f.queue.add_metric(labels, stats.pending)
            age = (now - stats.oldest_ms) / 1000 if stats.oldest_ms is not None else 0.0
            f.oldest.add_metric(labels, max(0.0, age))
        for status, count in self._notifier.transitions_total.items():
            f.transitions.add_metric([status], count)
        f.durable.add_metric([], 1 if self._notifier.outbox.durable else 0)
        f.errors.add_metric([], self._notifier.outbox_errors)
        yield from f.all()


class _Families:
    """The notification metric families, empty."""

    def __init__(self) -> None:
        labels = ["sink", "type"]
        self.sent = CounterMetricFamily(
            "zeroprobe_notifications_sent",
            "Messages (Alertmanager: pushes) a sink accepted.",
            labels=labels,
        )
        self.failed = CounterMetricFamily(
            "zeroprobe_notifications_failed",
            "Messages a sink refused for good (a 4xx other than 429): not retried.",
            labels=labels,
        )
        self.retried = CounterMetricFamily(
            "zeroprobe_notifications_retried",
            "Failed attempts that will be tried again (network error, timeout, 5xx, 429).",
            labels=labels,
        )
        self.dropped = CounterMetricFamily(
            "zeroprobe_notifications_dropped",
            "Messages dropped undelivered because they were older than max_age.",
            labels=labels,
        )
        self.queue = GaugeMetricFamily(
            "zeroprobe_notifications_queue_length",
            "Transitions waiting for a sink (Alertmanager: alerts of a failing push).",
            labels=labels,
        )
        self.oldest = GaugeMetricFamily(
            "zeroprobe_notifications_oldest_pending_age_seconds",
            "Age of the oldest transition waiting for a sink (Alertmanager: of the first "
            "failed push since the last success); 0 when none waits.",
            labels=labels,
        )
        self.transitions = CounterMetricFamily(
            "zeroprobe_notifications_transitions",
            "Published colour changes notified, by new status.",
            labels=["status"],
        )
        self.durable = GaugeMetricFamily(
            "zeroprobe_notifications_outbox_durable",
            "1 when the outbox is on disk; 0 when it is in memory only (see the log).",
        )
        self.errors = CounterMetricFamily(
            "zeroprobe_notifications_outbox_errors",
            "Transitions that could not be written to the outbox.",
        )

    def all(self) -> list[Metric]:
        return [
            self.sent,
            self.failed,
            self.retried,
            self.dropped,
            self.queue,
            self.oldest,
            self.transitions,
            self.durable,
            self.errors,
        ]
