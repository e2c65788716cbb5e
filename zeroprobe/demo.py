"""`zeroprobe demo`: the shipped contexts against a simulated replica set, no MongoDB needed."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping

from schemas.context_spec import (
    ConnectedSpec,
    HttpSpecBase,
    MongoReplicationLagSpec,
    PipelineHealthSpec,
    connection_env_var,
)
from zeroprobe.config.loader import load_contexts
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.simulators.endpoint import SimulatedEndpoint
from zeroprobe.simulators.mongo import SimulatedReplicaSet
from zeroprobe.simulators.monitoring import SimulatedMonitoring
from zeroprobe.simulators.pipelines import SimulatedPipelines
from zeroprobe.simulators.sharded import DEMO_DRIFTING_SHARD, SimulatedShardedCluster
from zeroprobe.web.server import serve

log = logging.getLogger(__name__)

#: The kind of the zeroprobe-http plugin, by name: the demo does not import plugins.
HTTP_ENDPOINT_KIND = "http_endpoint"
#: The connection label of the shipped sharded-cluster example: the demo gives it the mongos.
SHARDED_DEMO_CONNECTION = "ordersMongos"


def run_demo(settings: Settings, environ: Mapping[str, str]) -> int:
    """Start a 3-member simulated replica set on loopback and serve the contexts against it."""
    with (
        SimulatedReplicaSet() as replica_set,
        SimulatedShardedCluster.demo() as cluster,
        SimulatedMonitoring() as monitoring,
        SimulatedPipelines() as pipelines,
        SimulatedEndpoint() as endpoint,
    ):
        env = dict(environ)
        report = load_contexts(settings.contexts, env)
        for problem in report.errors:
            print(problem, file=sys.stderr)
        if not report.ok:
            return 2
        for context in report.specs:
            if isinstance(context.spec, MongoReplicationLagSpec):
                # The sharded example talks to the simulated mongos, every other Mongo spec
                # to the simulated replica set.
                sharded = context.spec.connection == SHARDED_DEMO_CONNECTION
                uri = cluster.uri if sharded else replica_set.uri
                env[connection_env_var(context.spec.connection)] = uri
            elif isinstance(context.spec, HttpSpecBase):
                # Prometheus and Alertmanager specs talk to the simulated HTTP APIs.
                env[connection_env_var(context.spec.connection)] = monitoring.url
            elif isinstance(context.spec, PipelineHealthSpec):
                # CI specs talk to the simulated GitHub / GitLab / Jenkins APIs.
                env[connection_env_var(context.spec.connection)] = pipelines.url
                if context.spec.token_env:
                    env[context.spec.token_env] = "demo:token"
            elif context.spec.kind == HTTP_ENDPOINT_KIND and isinstance(
                context.spec, ConnectedSpec
            ):
                # Web endpoint specs talk to the simulated web shop.
                env[connection_env_var(context.spec.connection)] = endpoint.url
                token_env = getattr(context.spec, "bearer_token_env", None)
                if isinstance(token_env, str):
                    env[token_env] = "demo-token"
        print(
            f"zeroprobe demo: simulated replica set {replica_set.set_name} on "
            f"{', '.join(replica_set.hosts)}; its first secondary drifts "
            "GREEN -> YELLOW -> RED -> GREEN every 4 minutes",
            flush=True,
        )
        print(
            f"zeroprobe demo: simulated sharded cluster, a mongos on loopback port {cluster.port} "
            f"and shards {', '.join(s.set_name for s in cluster.shards)}; the oplog window of "
            f"{DEMO_DRIFTING_SHARD} (with a member delayed 1h) shrinks and grows again every "
            "4 minutes",
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
        print(
            f"zeroprobe demo: simulated web shop on loopback port {endpoint.port}; its /checkout "
            "slows down GREEN -> YELLOW -> RED -> GREEN every 4 minutes",
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
