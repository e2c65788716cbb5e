"""zeroprobe's own Prometheus metrics, in a registry per service instance (no globals)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from probes.base import Kind
from zeroprobe import __version__
from zeroprobe.engine.store import OUTCOMES, ResultStore

log = logging.getLogger(__name__)

#: The classic text format that generate_latest() writes. Not prometheus-client's
#: CONTENT_TYPE_LATEST, which newer releases set to version=1.0.0.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# `_created` series double the exposition and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


# Seconds: fine below 10 ms (a punctual start), coarse up to a run that is half a minute late.
_DELAY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """Every metric zeroprobe exports, named `zeroprobe_*` with units in the names."""

    def __init__(
        self, redact: Callable[[str], str] = str, kinds: Iterable[Kind[Any, Any]] = ()
    ) -> None:
        # Label values that come from targets (member names) pass through the redactor.
        self._redact = redact
        self.registry = CollectorRegistry(auto_describe=True)
        # The gauges the installed kinds declare (KindMetric), by metric name; one gauge per
        # name even if two kinds declared it.
        self.kind_gauges: dict[str, Gauge] = {}
        for kind in kinds:
            for metric in kind.metrics:
                if metric.name not in self.kind_gauges:
                    self.kind_gauges[metric.name] = Gauge(
                        metric.name,
                        metric.documentation,
                        ["service_id", metric.label],
                        registry=self.registry,
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
            registry=self.registry,
        )
        self.run_duration = Histogram(
            "zeroprobe_probe_run_duration_seconds",
            "Duration of every probe run, all probes together.",
            buckets=_DELAY_BUCKETS_S,
            registry=self.registry,
        )
        # (metric name, service id) -> label value as reported -> (redacted label, child).
        self._children: dict[tuple[str, str], dict[str, tuple[str, Gauge]]] = {}

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
        series of label values no longer reported."""
        gauge = self.kind_gauges[name]
        # The children are kept per service and per label value as reported, with the
        # redacted label, so a run costs neither a `.labels()` lookup nor a redaction.
        key = (name, service_id)
        known = self._children.get(key)
        if known is None:
            if not values:
                return  # the common case of a failing probe: nothing to publish or drop
            known = self._children[key] = {}
        if known.keys() != values.keys():
            for value_label in known.keys() - values.keys():
                label, _ = known.pop(value_label)
                # Two names may redact to one label: the series goes with the last of them.
                if all(other != label for other, _ in known.values()):
                    gauge.remove(service_id, label)
        for value_label, value in values.items():
            entry = known.get(value_label)
            if entry is None:
                label = self._redact(value_label)
                entry = known[value_label] = (label, gauge.labels(service_id, label))
            entry[1].set(value)
        if not known:
            del self._children[key]

    def publish_results(self, store: ResultStore) -> None:
        """Export the per-probe series (status, duration, runs, last success) from `store`.

        They are read from the store at scrape time instead of being kept as labelled
        prometheus_client children: a child costs ~1 KiB (a dict, a lock) per series and a
        `.labels()` lookup per update, and the store holds the same facts already.
        """
        self.registry.register(_ProbeSeries(store))

    def forget(self, service_id: str, kind: Kind[Any, Any] | None) -> None:
        """Drop the kind's own series of a service no longer probed. The per-probe series
        follow the store, which stops tracking the id, so there is nothing else to drop."""
        for metric in kind.metrics if kind is not None else ():
            self.set_kind_series(metric.name, service_id, {})

    def record_config_load(self, ok: bool) -> None:
        """The outcome of loading the context specs, at start or on a reload."""
        self.config_last_reload_successful.set(1 if ok else 0)
        if ok:
            self.config_last_reload_success_time.set_to_current_time()

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)


class _ProbeSeries(Collector):
    """The per-probe series, built from the store on every scrape."""

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
            ),
        )
