"""Shared fixtures: spec factories, a simulated replica set, engines and recorded replies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import json_util

from schemas.context_spec import MongoReplicationLagSpec
from zeroprobe.engine import Engine
from zeroprobe.loader import ContextFile
from zeroprobe.settings import Settings
from zeroprobe.simulator import SimulatedReplicaSet

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
TESTDATA = TESTS / "testdata"

SpecFactory = Callable[..., MongoReplicationLagSpec]
EngineFactory = Callable[..., Engine]


def load_fixture(name: str) -> dict[str, Any]:
    """A recorded server reply in MongoDB Extended JSON (dates as {"$date": ...})."""
    loaded: dict[str, Any] = json_util.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return loaded


@pytest.fixture
def make_spec() -> SpecFactory:
    """Build a valid mongo_replication_lag spec; keyword overrides replace fields."""

    def factory(**overrides: Any) -> MongoReplicationLagSpec:
        fields: dict[str, Any] = {
            "service_id": "test.mongo.lag",
            "kind": "mongo_replication_lag",
            "connection": "rs",
            "interval": "2s",
            "timeout": "1s",
        }
        fields.update(overrides)
        return MongoReplicationLagSpec.model_validate(fields)

    return factory


@pytest.fixture
def replica_set() -> Iterator[SimulatedReplicaSet]:
    """A 3-member simulated replica set on loopback, lags fixed at 0 ms until a test sets them."""
    rs = SimulatedReplicaSet(lag_fn=lambda member, elapsed_s: 0.0).start()
    try:
        yield rs
    finally:
        rs.stop()


@pytest.fixture
def make_engine() -> EngineFactory:
    """Build an Engine from specs and an environment (settings overridable)."""

    def factory(
        specs: list[MongoReplicationLagSpec],
        environ: dict[str, str],
        **settings: Any,
    ) -> Engine:
        contexts = [ContextFile(spec=s, path=f"{s.service_id}.yaml", line=1) for s in specs]
        return Engine(contexts, Settings(**settings), environ)

    return factory
