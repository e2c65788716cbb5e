"""The registry: kind name -> probe functions. A test checks it matches schemas.SPEC_TYPES."""

from __future__ import annotations

from probes import alertmanager_alerts, mongo_replication_lag, pipeline_health, prometheus_query
from probes.base import ProbeKind

PROBES: dict[str, ProbeKind] = {
    "mongo_replication_lag": ProbeKind(
        name="mongo_replication_lag",
        probe=mongo_replication_lag.probe_mongo_replication_lag,
        grade=mongo_replication_lag.grade_mongo_replication_lag,
        export=mongo_replication_lag.export_mongo_replication_lag,
        forget=mongo_replication_lag.forget_mongo_replication_lag,
        liveness_needs_target=True,
    ),
    # /liveness is about the Mongo-backed probes: a Prometheus or Alertmanager outage shows
    # as a RED line of its own probe, not as a failing collector.
    "prometheus_query": ProbeKind(
        name="prometheus_query",
        probe=prometheus_query.probe_prometheus_query,
        grade=prometheus_query.grade_prometheus_query,
        liveness_needs_target=False,
    ),
    "alertmanager_alerts": ProbeKind(
        name="alertmanager_alerts",
        probe=alertmanager_alerts.probe_alertmanager_alerts,
        grade=alertmanager_alerts.grade_alertmanager_alerts,
        liveness_needs_target=False,
    ),
    "pipeline_health": ProbeKind(
        name="pipeline_health",
        probe=pipeline_health.probe_pipeline_health,
        grade=pipeline_health.grade_pipeline_health,
        liveness_needs_target=False,
    ),
}
