"""zeroprobe's own Prometheus metrics, in a registry per service instance (no globals)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from zeroprobe import __version__
from zeroprobe.store import OUTCOMES, ResultStore

#: The classic text format that generate_latest() writes. Not prometheus-client's
#: CONTENT_TYPE_LATEST, which newer releases set to version=1.0.0.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# `_created` series double the exposition and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


# Seconds: fine below 10 ms (a punctual start), coarse up to a run that is half a minute late.
_DELAY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """Every metric zeroprobe exports, named `zeroprobe_*` with units in the names."""

    def __init__(self, redact: Callable[[str], str] = str) -> None:
        # Label values that come from targets (member names) pass through the redactor.
        self._redact = redact
        self.registry = CollectorRegistry(auto_describe=True)
        self.mongo_lag = Gauge(
            "zeroprobe_mongo_replication_lag_seconds",
            "Replication lag of a replica-set member behind the primary, delay subtracted.",
            ["service_id", "member"],
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
        self._members: dict[str, dict[str, tuple[str, Gauge]]] = {}

    def set_member_lags(self, service_id: str, lags_s: Mapping[str, float]) -> None:
        """Publish these members' lags and drop series of members no longer reported."""
        # The children are kept per service and per member name as reported, with the
        # redacted label, so a run costs neither a `.labels()` lookup nor a redaction.
        known = self._members.get(service_id)
        if known is None:
            if not lags_s:
                return  # the common case of a failing probe: nothing to publish or drop
            known = self._members[service_id] = {}
        if known.keys() != lags_s.keys():
            for member in known.keys() - lags_s.keys():
                label, _ = known.pop(member)
                # Two names may redact to one label: the series goes with the last of them.
                if all(other != label for other, _ in known.values()):
                    self.mongo_lag.remove(service_id, label)
        for member, lag_s in lags_s.items():
            entry = known.get(member)
            if entry is None:
                label = self._redact(member)
                entry = known[member] = (
                    label,
                    self.mongo_lag.labels(service_id=service_id, member=label),
                )
            entry[1].set(lag_s)
        if not known:
            del self._members[service_id]

    def publish_results(self, store: ResultStore) -> None:
        """Export the per-probe series (status, duration, runs, last success) from `store`.

        They are read from the store at scrape time instead of being kept as labelled
        prometheus_client children: a child costs ~1 KiB (a dict, a lock) per series and a
        `.labels()` lookup per update, and the store holds the same facts already.
        """
        self.registry.register(_ProbeSeries(store))

    def forget(self, service_id: str, kind: str) -> None:
        """Drop the series every kind has of a service no longer probed (a kind's own series
        go through its ProbeKind.forget). The per-probe series follow the store, which
        stops tracking the id, so there is nothing to drop here."""

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
