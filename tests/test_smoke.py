from __future__ import annotations

from schemas.grading import Grade
from tests.conftest import EngineFactory, SpecFactory
from zeroprobe.simulators.mongo import SimulatedReplicaSet


async def test_probe_reads_a_healthy_replica_set_over_tcp(
    replica_set: SimulatedReplicaSet, make_spec: SpecFactory, make_engine: EngineFactory
) -> None:
    engine = make_engine([make_spec()], {"ZEROPROBE_CONNECTION_RS": replica_set.uri})
    try:
        result = await engine.run_once("test.mongo.lag")
    finally:
        await engine.stop()
    assert result.grade is Grade.GREEN
    assert result.lines[0].text == f"- Primary {replica_set.hosts[0]} replication lag 0ms"
