"""`zeroprobe demo`: the shipped contexts against a simulated replica set, no MongoDB needed."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping

from schemas.context_spec import (
    HttpSpecBase,
    MongoReplicationLagSpec,
    PipelineHealthSpec,
    connection_env_var,
)
from zeroprobe.engine import Engine
from zeroprobe.loader import load_contexts
from zeroprobe.server import serve
from zeroprobe.settings import Settings
from zeroprobe.simulated_monitoring import SimulatedMonitoring
from zeroprobe.simulated_pipelines import SimulatedPipelines
from zeroprobe.simulator import SimulatedReplicaSet

log = logging.getLogger(__name__)


def run_demo(settings: Settings, environ: Mapping[str, str]) -> int:
    """Start a 3-member simulated replica set on loopback and serve the contexts against it."""
    with (
        SimulatedReplicaSet() as replica_set,
        SimulatedMonitoring() as monitoring,
        SimulatedPipelines() as pipelines,
    ):
        env = dict(environ)
        report = load_contexts(settings.contexts, env)
        for problem in report.errors:
            print(problem, file=sys.stderr)
        if not report.ok:
            return 2
        for context in report.specs:
            if isinstance(context.spec, MongoReplicationLagSpec):
                # Every Mongo spec of the demo talks to the simulated set.
                env[connection_env_var(context.spec.connection)] = replica_set.uri
            elif isinstance(context.spec, HttpSpecBase):
                # Prometheus and Alertmanager specs talk to the simulated HTTP APIs.
                env[connection_env_var(context.spec.connection)] = monitoring.url
            elif isinstance(context.spec, PipelineHealthSpec):
                # CI specs talk to the simulated GitHub / GitLab / Jenkins APIs.
                env[connection_env_var(context.spec.connection)] = pipelines.url
                if context.spec.token_env:
                    env[context.spec.token_env] = "demo:token"
        print(
            f"zeroprobe demo: simulated replica set {replica_set.set_name} on "
            f"{', '.join(replica_set.hosts)}; its first secondary drifts "
            "GREEN -> YELLOW -> RED -> GREEN every 4 minutes",
            flush=True,
        )
        print(
            "zeroprobe demo: simulated Prometheus and Alertmanager APIs on loopback port "
            f"{monitoring.port}; the payments-api 5xx ratio drifts the same way",
            flush=True,
        )
        print(
            f"zeroprobe demo: simulated GitHub, GitLab and Jenkins APIs on loopback port "
            f"{pipelines.port}; the newest completed run failed twice in a row (out of memory)",
            flush=True,
        )
        engine = Engine(report.specs, settings, env)

        def announce(url: str) -> None:
            lines = [f"zeroprobe demo serving on {url}", f"  status page: {url}/"]
            for service_id in sorted(engine.contexts):
                lines.append(f"  document:  curl -X PUT {url}/{service_id}")
            lines += [
                f"  liveness:  {url}/liveness",
                f"  health:    {url}/livez  {url}/readyz",
                f"  metrics:   {url}/metrics",
                f"  JSON API:  {url}/api/v1/results  (OpenAPI: {url}/openapi.json)",
                "Stop with Ctrl-C.",
            ]
            print("\n".join(lines), flush=True)

        asyncio.run(serve(engine, on_started=announce))
    return 0
