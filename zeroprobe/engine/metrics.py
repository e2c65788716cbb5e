"""zeroprobe's own Prometheus metrics, in a registry per service instance (no globals).

Two kinds of series. The process-wide ones (counters, histograms, gauges without a probe in
their labels) are ordinary prometheus-client metrics in `Metrics.registry`, rendered by it on
every scrape: they are few. The per-probe ones (status, duration, runs, last success, and the
gauges the kinds declare, e.g. the lag of each member) are thousands: they are kept rendered
per probe (exposition.py) and rendered again only for the probes that changed since the
previous scrape, so a scrape costs about what sending its bytes costs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from probes.base import Kind, KindMetric
from zeroprobe import __version__
from zeroprobe.config.topology import Topology
from zeroprobe.engine.exposition import (
    Format,
    Row,
    Scrape,
    Table,
    kind_chunk,
    openmetrics_latest,
    probe_chunks,
    probe_families,
)
from zeroprobe.engine.store import OUTCOMES, ResultStore

log = logging.getLogger(__name__)

#: The classic text format that generate_latest() writes. Not prometheus-client's
#: CONTENT_TYPE_LATEST, which newer releases set to version=1.0.0.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# `_created` series double the exposition and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Probes rendered between two turns of the event loop during a scrape: 10-30 µs each on the
#: 2-core bench machine, so a turn stays near a millisecond.
REFRESH_BATCH = 64


# Seconds: fine below 10 ms (a punctual start), coarse up to a run that is half a minute late.
_DELAY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def _unit(name: str) -> str:
    """The OpenMetrics unit a metric name ends with, if any."""
    for unit in ("seconds", "bytes"):
        if name.endswith("_" + unit):
            return unit
    return ""


class Metrics:
    """Every metric zeroprobe exports, named `zeroprobe_*` with units in the names."""

    def __init__(
        self, redact: Callable[[str], str] = str, kinds: Iterable[Kind[Any, Any]] = ()
    ) -> None:
        # Label values that come from targets (member names) pass through the redactor.
        self._redact = redact
        # The process-wide series; prometheus-client renders them on every scrape.
        self.registry = CollectorRegistry(auto_describe=True)
        # The gauges the installed kinds declare (KindMetric), by metric name; one family per
        # name even if two kinds declared it (the first declaration's label).
        self.kind_metrics: dict[str, KindMetric] = {}
        for kind in kinds:
            for metric in kind.metrics:
                self.kind_metrics.setdefault(metric.name, metric)
        # Every per-probe family, kept rendered: a row per probe of the store's four
        # families and the kinds' gauges.
        self._table = Table(
            [
                *probe_families(),
                *(
                    GaugeMetricFamily(name, metric.documentation, unit=_unit(name))
                    for name, metric in self.kind_metrics.items()
                ),
            ]
        )
        self.specs_loaded = Gauge(
            "zeroprobe_specs_loaded",
            "Number of context specs being probed.",
            registry=self.registry,
        )
        self.config_last_reload_successful = Gauge(
            "zeroprobe_config_last_reload_successful",
            "1 when the newest load of the context specs was applied; 0 when it was rejected "
            "and the previous set kept running.",
            registry=self.registry,
        )
        self.config_last_reload_success_time = Gauge(
            "zeroprobe_config_last_reload_success_timestamp_seconds",
            "Unix time of the newest load of the context specs that was applied (start counts).",
            unit="seconds",
            registry=self.registry,
        )
        self.build_info = Gauge(
            "zeroprobe_build_info",
            "Always 1; the version is in the label.",
            ["version"],
            registry=self.registry,
        )
        self.build_info.labels(version=__version__).set(1)
        # Label-free, so their size does not grow with the number of specs.
        self.start_delay = Histogram(
            "zeroprobe_probe_start_delay_seconds",
            "Actual start of a scheduled probe run minus its planned start.",
            buckets=_DELAY_BUCKETS_S,
            unit="seconds",
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "zeroprobe_probe_run_duration_seconds",
            "Duration of every probe run, all probes together.",
            buckets=_DELAY_BUCKETS_S,
            unit="seconds",
            registry=self.registry,
        )
        # (metric name, service id) -> label value as reported -> redacted label, so that a
        # run costs no redaction; and -> redacted label -> value, what the family shows.
        self._kind_labels: dict[tuple[str, str], dict[str, str]] = {}
        self._kind_values: dict[tuple[str, str], dict[str, float]] = {}
        # The ids whose kind series changed since a scrape last rendered them (the store
        # keeps its own), then those of both waiting for a refresh.
        self._changed: set[str] = set()
        self._store: ResultStore | None = None

    def export_kind(
        self, service_id: str, kind: Kind[Any, Any], observation: object | None, spec: object
    ) -> None:
        """Publish what `kind.export` makes of a measured run; a run that could not measure
        (no observation) drops the probe's series of the kind, as does an export that fails."""
        values: Mapping[str, Mapping[str, float]] = {}
        if observation is not None and kind.export is not None:
            try:
                values = kind.export(observation, spec)
            except Exception:
                log.exception("%s: exporting the metrics of kind %s failed", service_id, kind.name)
                values = {}
        for metric in kind.metrics:
            self.set_kind_series(metric.name, service_id, values.get(metric.name, {}))

    def set_kind_series(self, name: str, service_id: str, values: Mapping[str, float]) -> None:
        """Publish a probe's values of the kind gauge `name` (label value -> value) and drop
        series of label values no longer reported. Rendered at the next scrape."""
        if name not in self.kind_metrics:
            raise KeyError(name)
        key = (name, service_id)
        known = self._kind_labels.get(key)
        if not values:
            if known is None:
                return  # the common case of a failing probe: nothing to publish or drop
            del self._kind_labels[key]
            del self._kind_values[key]
        else:
            if known is None or known.keys() != values.keys():
                before = known or {}
                known = self._kind_labels[key] = {
                    label: before[label] if label in before else self._redact(label)
                    for label in values
                }
            # Two names may redact to one label: the series goes with the last of them.
            self._kind_values[key] = {known[label]: value for label, value in values.items()}
        self._changed.add(service_id)

    def publish_results(self, store: ResultStore) -> None:
        """Export the per-probe series (status, duration, runs, last success) from `store`:
        a scrape renders those of the ids the store changed since the previous one."""
        self._store = store

    def forget(self, service_id: str, kind: Kind[Any, Any] | None) -> None:
        """Drop the kind's own series of a service no longer probed. The per-probe series
        follow the store, which reports the id as changed when it stops tracking it."""
        for metric in kind.metrics if kind is not None else ():
            self.set_kind_series(metric.name, service_id, {})

    def record_config_load(self, ok: bool) -> None:
        """The outcome of loading the context specs, at start or on a reload."""
        self.config_last_reload_successful.set(1 if ok else 0)
        if ok:
            self.config_last_reload_success_time.set_to_current_time()

    # Scraping -----------------------------------------------------------------------------

    def refresh(self, batch: int = REFRESH_BATCH) -> Generator[None, None, None]:
        """Render the rows of the probes that changed since they were last rendered, `batch`
        probes at a time, yielding between batches (a scrape lets the event loop run
        there). Changes made meanwhile wait for the next scrape. On the event loop."""
        store = self._store
        pending, self._changed = self._changed, set()
        if store is not None:
            pending |= store.take_changed()
        try:
            yield from self._render_rows(pending, batch)
        finally:
            self._changed |= pending  # what a cancelled scrape did not get to

    def _render_rows(self, pending: set[str], batch: int) -> Iterator[None]:
        store = self._store
        table = self._table
        table.begin()
        kinds = [(name, metric.label) for name, metric in self.kind_metrics.items()]
        values_of = self._kind_values
        nothing = (b"", b"", b"", b"")
        while pending:
            for _ in range(min(batch, len(pending))):
                service_id = pending.pop()
                series = store.series_of(service_id) if store is not None else None
                row: Row = nothing if series is None else probe_chunks(*series)
                for name, label in kinds:
                    values = values_of.get((name, service_id))
                    row += (kind_chunk(name, label, service_id, values) if values else b"",)
                table.set(service_id, row if any(row) else None)
            yield

    def scrape(self, fmt: Format, compressed: bool) -> Scrape:
        """An exposition of the series as they are now (after `refresh`); build it with
        `build()` (in a thread) and hand its work back with `finish()`."""
        return self._table.scrape(self.registry, fmt, compressed)

    def render(self, fmt: Format = "text") -> bytes:
        """The exposition of every metric, uncompressed, at once (tests, tools)."""
        for _ in self.refresh():
            pass
        scrape = self.scrape(fmt, compressed=False)
        body = b"".join(scrape.build())
        scrape.finish()
        return body

    def render_uncached(self, fmt: Format = "text") -> bytes:
        """Every metric rendered by prometheus-client from the facts, as /metrics was before
        the per-probe cache: the baseline of bench/metrics_scrape.py and what the tests
        compare the cached rendering with."""
        everything = _Everything(self)
        if fmt == "openmetrics":
            return openmetrics_latest(everything)
        return generate_latest(everything)

    def kind_series(self) -> Iterator[Metric]:
        """The families of the kinds' gauges, built from their values (render_uncached)."""
        for name, metric in self.kind_metrics.items():
            family = GaugeMetricFamily(
                name, metric.documentation, labels=["service_id", metric.label], unit=_unit(name)
            )
            for (of, service_id), values in self._kind_values.items():
                if of == name:
                    for label, value in values.items():
                        family.add_metric([service_id, label], value)
            yield family


class _Everything(Collector):
    """The registry, the kinds' gauges and the store's per-probe series, all collected anew."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics.registry.collect()
        yield from self._metrics.kind_series()
        if self._metrics._store is not None:
            yield from _ProbeSeries(self._metrics._store).collect()


class _ProbeSeries(Collector):
    """The per-probe series built from the whole store (render_uncached: the baseline).
    Its families are those of exposition.probe_families, with the same names and units."""

    def __init__(self, store: ResultStore) -> None:
        self._store = store

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        status, duration, runs, last_success = self._families()
        for result, counts, last_success_ms in self._store.series():
            labels = [result.service_id, result.kind]
            status.add_metric(labels, result.grade.rank)
            duration.add_metric(labels, result.duration_s)
            for outcome, count in zip(OUTCOMES, counts, strict=True):
                if count:
                    runs.add_metric([*labels, outcome], count)
            if last_success_ms is not None:
                last_success.add_metric(labels, last_success_ms / 1000)
        yield from (status, duration, runs, last_success)

    @staticmethod
    def _families() -> tuple[
        GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily, GaugeMetricFamily
    ]:
        labels = ["service_id", "kind"]
        return (
            GaugeMetricFamily(
                "zeroprobe_probe_status",
                "Published status of a probe: 0 GREEN, 1 YELLOW, 2 RED (flap damping: a "
                "change counts once `confirm` runs agree).",
                labels=labels,
            ),
            GaugeMetricFamily(
                "zeroprobe_probe_duration_seconds",
                "How long the newest run of a probe took.",
                labels=labels,
                unit="seconds",
            ),
            CounterMetricFamily(
                "zeroprobe_probe_runs",
                "Probe runs by outcome: success (measured), error (could not measure), timeout.",
                labels=[*labels, "outcome"],
            ),
            GaugeMetricFamily(
                "zeroprobe_probe_last_success_timestamp_seconds",
                "Unix time of the newest run that measured its target.",
                labels=labels,
                unit="seconds",
            ),
        )


# Seconds: a forwarded request on one network takes about a millisecond; its total timeout is 1 s.
_FORWARD_BUCKETS_S = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class ClusterMetrics:
    """The metrics of a pod of a cluster (shards and replicas, zeroprobe/web/cluster.py),
    registered only when there is one."""

    def __init__(self, registry: CollectorRegistry, topology: Topology) -> None:
        self.shard_info = Gauge(
            "zeroprobe_shard_info",
            "Always 1; this pod's shard and replica, and the number of shards, in the labels.",
            ["shard", "replica", "shards"],
            registry=registry,
        )
        self.shard_info.labels(
            str(topology.shard), str(topology.replica), str(topology.shards)
        ).set(1)
        self.owned_specs = Gauge(
            "zeroprobe_owned_specs",
            "Number of loaded context specs this pod's shard owns (and probes).",
            registry=registry,
        )
        self.forwarded_requests = Counter(
            "zeroprobe_forwarded_requests",
            "Document requests for another shard's ids, by outcome: ok (the first replica "
            "answered), retried_ok (its sibling did), no_result (the owners' 503: no result "
            "yet), sibling (this pod's own id, from its sibling replica), previous_owner (the "
            "previous owner, during a reshard), grace (a result kept during a reshard), "
            "unavailable (no replica answered).",
            ["outcome"],
            registry=registry,
        )
        self.forward_duration = Histogram(
            "zeroprobe_forward_duration_seconds",
            "Time to answer a document request from another shard's replicas.",
            buckets=_FORWARD_BUCKETS_S,
            registry=registry,
        )
        self.peers_reachable = Gauge(
            "zeroprobe_peers_reachable",
            "Number of other pods of the cluster that answered their last request.",
            registry=registry,
        )
