"""Pushing alerts to Alertmanager the way Prometheus does.

Every probe whose published colour is not GREEN is an alert; the whole list is POSTed to
`/api/v2/alerts` of *every* configured Alertmanager (one send loop each, never load-balanced)
when something changes and again every `resend_interval`, with `endsAt` = now + 4 ×
max(interval, resend_interval): the resend is the retry, and an alert zeroprobe stops sending
resolves by itself once its `endsAt` passes. An alert that stops firing (recovery, a change of
severity, a removed probe) is sent resolved (`endsAt` = when it stopped) for 15 minutes.

Labels are the same in every replica (`alertname`, `service_id`, `severity`, `kind` and the
spec's own `labels`, nothing per process), so Alertmanager deduplicates replicas probing the
same specs. `ZeroprobeWatchdog` always fires: route it to a dead man's switch, which then
notices a zeroprobe that died rather than seeing every alert resolve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from schemas.grading import Grade
from zeroprobe.config.notifiers import AlertmanagerConfig
from zeroprobe.engine.core import Engine
from zeroprobe.notify.delivery import Delivery, backoff_s, post_json
from zeroprobe.notify.transitions import clip, page_link, rfc3339

log = logging.getLogger(__name__)

PROBE_ALERT = "ZeroprobeProbe"
WATCHDOG_ALERT = "ZeroprobeWatchdog"
SEVERITY = {Grade.YELLOW: "warning", Grade.RED: "critical"}
#: How long a resolved alert is sent again (Prometheus' resolvedRetention).
RESOLVED_RETENTION_S = 15 * 60
#: An alert stays firing this many resend intervals (or probe intervals) without news.
ENDS_AT_FACTOR = 4
#: Changes within this time after the first are one push (a storm is not 500 POSTs).
PUSH_DEBOUNCE_S = 0.2
#: Pushes on change start at least this far apart: a storm whose runs spread over seconds
#: (a round's starts do) is a few pushes of the whole list, not one every debounce (measured:
#: 1,000 probes turning RED over 5 s made 26-32 pushes, 3.6-4.6 MB of JSON, with 0.2 s alone).
MIN_PUSH_GAP_S = 1.0
#: Most alerts in one POST (Prometheus sends at most 256 per request; ours are larger).
MAX_ALERTS_PER_POST = 500
#: Annotation values are cut to this many characters.
MAX_ANNOTATION_CHARS = 8000

Labels = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class _Alert:
    labels: Labels
    starts_ms: int
    annotations: dict[str, str] = field(default_factory=dict)
    generator_url: str = ""
    ends_ms: int | None = None  # when it stopped firing (resolved), else None


class AlertState:
    """What zeroprobe tells Alertmanager, derived from the store whenever a push is built."""

    def __init__(
        self,
        engine: Engine,
        page_url: str,
        seed: Mapping[str, tuple[Grade, int]] | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._engine = engine
        self._page_url = page_url
        self._clock_ms = clock_ms
        self._started_ms = clock_ms()
        self._firing: dict[str, _Alert] = {}
        self._resolved: dict[Labels, _Alert] = {}
        self._lock = threading.Lock()
        # Probes last notified non-GREEN before a restart: Alertmanager may still hold their
        # alert, which is resolved if their first result says they are GREEN (or gone).
        for service_id, (grade, since_ms) in (seed or {}).items():
            labels = self._labels(service_id, grade)
            if labels is not None:
                self._firing[service_id] = _Alert(labels, since_ms)

    def _labels(self, service_id: str, grade: Grade) -> Labels | None:
        context = self._engine.contexts.get(service_id)
        if grade is Grade.GREEN or context is None:
            return None
        spec = context.spec
        labels = {
            **spec.labels,
            "alertname": PROBE_ALERT,
            "service_id": service_id,
            "severity": SEVERITY[grade],
            "kind": spec.kind,
        }
        return tuple(sorted(labels.items()))

    def alerts(self, resend_s: float) -> list[dict[str, Any]]:
        """Every alert to push now: the watchdog, the firing probes, the recently resolved.
        Thread-safe: the pushers build it in a thread (2,000 alerts take tens of ms)."""
        with self._lock:
            return self._alerts(resend_s)

    def _alerts(self, resend_s: float) -> list[dict[str, Any]]:
        now = self._clock_ms()
        engine = self._engine
        firing: dict[str, _Alert] = {}
        # A snapshot: a reload replaces the dict (never changes it), readers see one or the other.
        for service_id, context in list(engine.contexts.items()):
            newest = engine.store.newest(service_id)
            before = self._firing.get(service_id)
            if newest is None:
                if before is not None:
                    firing[service_id] = before  # no result since start yet: wait and see
                continue
            labels = self._labels(service_id, newest.grade)
            if labels is None:
                continue
            starts_ms = before.starts_ms if before is not None and before.labels == labels else now
            summary = next(
                (line.text for line in newest.lines if line.grade is newest.grade),
                newest.lines[0].text if newest.lines else "",
            ).removeprefix("- ")
            page = page_link(self._page_url, service_id)
            annotations = {
                "summary": clip(f"{service_id} is {newest.grade.value}: {summary}", 1000),
                "action_body": clip(newest.action_body, MAX_ANNOTATION_CHARS),
                "runbook_url": page,
            }
            if context.spec.description:
                annotations["description"] = clip(context.spec.description, 1000)
            alert = _Alert(labels, starts_ms, annotations, page)
            alert.ends_ms = now + round(
                1000 * ENDS_AT_FACTOR * max(resend_s, context.spec.interval_s)
            )
            firing[service_id] = alert
        live = {alert.labels for alert in firing.values()}
        for service_id, before in self._firing.items():
            after = firing.get(service_id)
            if (after is None or after.labels != before.labels) and before.labels not in live:
                # Resolved when the result that says so was collected (a removed probe: now).
                newest = engine.store.newest(service_id)
                changed_ms = newest.collected_at_ms if newest is not None else now
                before.ends_ms = max(before.starts_ms, min(now, changed_ms))
                self._resolved[before.labels] = before
        for labels in [k for k, a in self._resolved.items() if k in live]:
            del self._resolved[labels]
        cutoff = now - RESOLVED_RETENTION_S * 1000
        for labels in [k for k, a in self._resolved.items() if (a.ends_ms or 0) < cutoff]:
            del self._resolved[labels]
        self._firing = firing
        pushed = [_as_json(a) for a in firing.values() if a.annotations]
        pushed += [_as_json(a) for a in self._resolved.values()]
        pushed.append(self._watchdog(now, resend_s))
        return pushed

    def _watchdog(self, now: int, resend_s: float) -> dict[str, Any]:
        return {
            "labels": {"alertname": WATCHDOG_ALERT, "severity": "none"},
            "annotations": {
                "summary": "zeroprobe is alive. This alert always fires: route it to a dead "
                "man's switch, which alerts when it stops.",
            },
            "startsAt": rfc3339(self._started_ms),
            "endsAt": rfc3339(now + 1000 * ENDS_AT_FACTOR * resend_s),
            "generatorURL": self._page_url + "/",
        }

    @property
    def firing_count(self) -> int:
        """Probe alerts firing as of the newest push built."""
        return len(self._firing)


def _as_json(alert: _Alert) -> dict[str, Any]:
    body: dict[str, Any] = {
        "labels": dict(alert.labels),
        "annotations": alert.annotations,
        "startsAt": rfc3339(alert.starts_ms),
    }
    if alert.ends_ms is not None:
        body["endsAt"] = rfc3339(alert.ends_ms)
    if alert.generator_url:
        body["generatorURL"] = alert.generator_url
    return body


@dataclass(slots=True)
class PushStats:
    """What one Alertmanager's send loop did, for /metrics and the page."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    last_ok_ms: int | None = None
    last_error: str = ""
    failing_since_ms: int | None = None
    alerts: int = 0


class AlertmanagerPusher:
    """One send loop for one Alertmanager: pushes on change (debounced) and every resend."""

    def __init__(
        self,
        index: int,
        url: str,
        *,
        config: AlertmanagerConfig,
        state: AlertState,
        session: aiohttp.ClientSession,
        redact: Callable[[str], str],
        retry_initial_s: float,
    ) -> None:
        self.name = f"alertmanager-{index}"
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        #: What the page and the logs show of the URL: host and port only.
        self.shown = redact(
            f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        )
        self.config = config
        self.stats = PushStats()
        self._state = state
        self._session = session
        self._redact = redact
        self._retry_initial_s = retry_initial_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the send loop (it pushes at once)."""
        self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    def poke(self) -> None:
        """Something changed: push soon."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop (a push in flight is abandoned: the next one after a restart covers)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        resend_s = self.config.resend_interval
        wait_s = 0.0
        failures = 0
        loop = asyncio.get_running_loop()
        last_push = -MIN_PUSH_GAP_S
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()
                gap_s = last_push + MIN_PUSH_GAP_S - loop.time()
                await asyncio.sleep(max(PUSH_DEBOUNCE_S, gap_s))
            self._wake.clear()
            last_push = loop.time()
            try:
                delivery = await self.push()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: building or sending the alerts failed", self.name)
                delivery = Delivery(ok=False, retry=True, detail="internal error")
            if delivery.ok:
                failures = 0
                wait_s = resend_s
            else:
                failures += 1
                # The resend is the retry; sooner while it keeps failing, never later.
                wait_s = min(resend_s, backoff_s(failures, self._retry_initial_s, resend_s))
                if delivery.retry_after_s is not None:
                    wait_s = min(resend_s, max(wait_s, delivery.retry_after_s))

    async def push(self) -> Delivery:
        """POST every current alert (in batches); the outcome of the first failing batch."""
        alerts = await asyncio.to_thread(self._state.alerts, self.config.resend_interval)
        self.stats.alerts = len(alerts)
        now = time.time_ns() // 1_000_000
        for start in range(0, len(alerts), MAX_ALERTS_PER_POST):
            batch = alerts[start : start + MAX_ALERTS_PER_POST]
            delivery = await post_json(
                self._session, f"{self.url}/api/v2/alerts", batch, self.config.timeout
            )
            if not delivery.ok:
                self._failed(delivery, now)
                return delivery
        self.stats.sent += 1
        self.stats.last_ok_ms = now
        if self.stats.failing_since_ms is not None:
            log.info("%s (%s): pushing again", self.name, self.shown)
        self.stats.failing_since_ms = None
        self.stats.last_error = ""
        return Delivery(ok=True)

    def _failed(self, delivery: Delivery, now: int) -> None:
        detail = self._redact(delivery.detail)
        if delivery.retry:
            self.stats.retried += 1
        else:
            self.stats.failed += 1
        if self.stats.failing_since_ms is None or detail != self.stats.last_error:
            log.warning(
                "%s (%s): push of %d alert(s) failed: %s%s",
                self.name,
                self.shown,
                self.stats.alerts,
                detail,
                "" if delivery.retry else " (refused: fix the alerts or Alertmanager)",
            )
        if self.stats.failing_since_ms is None:
            self.stats.failing_since_ms = now
        self.stats.last_error = detail


def probe_alerts(alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The probe alerts of a pushed list (the watchdog left out)."""
    return [a for a in alerts if a["labels"].get("alertname") == PROBE_ALERT]
