"""The registry: kind name -> probe functions. A test checks it matches schemas.SPEC_TYPES."""

from __future__ import annotations

from probes import mongo_replication_lag
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
}
