"""zeroprobe's own Prometheus metrics, in a registry per service instance (no globals)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from zeroprobe import __version__

#: The classic text format that generate_latest() writes. Not prometheus-client's
#: CONTENT_TYPE_LATEST, which newer releases set to version=1.0.0.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# `_created` series double the exposition and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


# Seconds: fine below 10 ms (a punctual start), coarse up to a run that is half a minute late.
_DELAY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """Every metric zeroprobe exports, named `zeroprobe_*` with units in the names."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.probe_status = Gauge(
            "zeroprobe_probe_status",
            "Newest graded status of a probe: 0 GREEN, 1 YELLOW, 2 RED.",
            ["service_id", "kind"],
            registry=self.registry,
        )
        self.probe_duration = Gauge(
            "zeroprobe_probe_duration_seconds",
            "How long the newest run of a probe took.",
            ["service_id", "kind"],
            registry=self.registry,
        )
        self.probe_runs = Counter(
            "zeroprobe_probe_runs",
            "Probe runs by outcome: success (measured), error (could not measure), timeout.",
            ["service_id", "kind", "outcome"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "zeroprobe_probe_last_success_timestamp_seconds",
            "Unix time of the newest run that measured its target.",
            ["service_id", "kind"],
            registry=self.registry,
        )
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
        self._members: dict[str, set[str]] = {}

    def set_member_lags(self, service_id: str, lags_s: Mapping[str, float]) -> None:
        """Publish these members' lags and drop series of members no longer reported."""
        for member in self._members.get(service_id, set()) - set(lags_s):
            self.mongo_lag.remove(service_id, member)
        for member, lag_s in lags_s.items():
            self.mongo_lag.labels(service_id=service_id, member=member).set(lag_s)
        self._members[service_id] = set(lags_s)

    def forget(self, service_id: str, kind: str) -> None:
        """Drop the series every kind has of a service no longer probed (a kind's own series
        go through its ProbeKind.forget)."""
        for gauge in (self.probe_status, self.probe_duration, self.last_success):
            with contextlib.suppress(KeyError):
                gauge.remove(service_id, kind)
        for outcome in ("success", "error", "timeout"):
            with contextlib.suppress(KeyError):
                self.probe_runs.remove(service_id, kind, outcome)

    def record_config_load(self, ok: bool) -> None:
        """The outcome of loading the context specs, at start or on a reload."""
        self.config_last_reload_successful.set(1 if ok else 0)
        if ok:
            self.config_last_reload_success_time.set_to_current_time()

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)
