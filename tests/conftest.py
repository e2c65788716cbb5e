"""Shared fixtures: spec factories, a simulated replica set, engines and recorded replies."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from bson import json_util

from schemas.context_spec import (
    AlertmanagerAlertsSpec,
    HttpSpecBase,
    MongoReplicationLagSpec,
    PrometheusQuerySpec,
    SpecBase,
    connection_env_var,
)
from tests.servers import AlertmanagerServer, Exporter, PrometheusServer
from zeroprobe.config.loader import ContextFile
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.engine.store import Result
from zeroprobe.simulators.mongo import SimulatedReplicaSet

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
TESTDATA = TESTS / "testdata"

SpecFactory = Callable[..., MongoReplicationLagSpec]
QuerySpecFactory = Callable[..., PrometheusQuerySpec]
AlertsSpecFactory = Callable[..., AlertmanagerAlertsSpec]
EngineFactory = Callable[..., Engine]
T = TypeVar("T", bound=SpecBase)


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


def spec_factory(model: type[T], defaults: dict[str, Any]) -> Callable[..., T]:
    """A factory of valid `model` specs: `defaults`, with keyword overrides replacing fields."""

    def factory(**overrides: Any) -> T:
        return model.model_validate({**defaults, **overrides})

    return factory


@pytest.fixture
def make_query_spec() -> QuerySpecFactory:
    """A valid prometheus_query spec (label `prom`, above, yellow 10, red 20)."""
    return spec_factory(
        PrometheusQuerySpec,
        {
            "service_id": "test.prom.query",
            "kind": "prometheus_query",
            "connection": "prom",
            "query": "up",
            "thresholds": {"yellow": 10, "red": 20},
            "interval": "2s",
            "timeout": "1s",
        },
    )


@pytest.fixture
def make_alerts_spec() -> AlertsSpecFactory:
    """A valid alertmanager_alerts spec (label `am`)."""
    return spec_factory(
        AlertmanagerAlertsSpec,
        {
            "service_id": "test.am.alerts",
            "kind": "alertmanager_alerts",
            "connection": "am",
            "interval": "2s",
            "timeout": "1s",
        },
    )


async def run_spec(
    make_engine: EngineFactory, spec: SpecBase, environ: dict[str, str]
) -> tuple[Result, str]:
    """Run `spec` once in an engine of its own; the result and the engine's metrics text."""
    engine = make_engine([spec], environ)
    try:
        result = await engine.run_once(spec.service_id)
        return result, engine.metrics.render().decode()
    finally:
        await engine.stop()


async def run_against(
    make_engine: EngineFactory, factory: Callable[..., HttpSpecBase], url: str, **fields: Any
) -> Result:
    """Build a spec with `factory(**fields)` and run it once with its connection set to `url`."""
    spec = factory(**fields)
    result, _ = await run_spec(make_engine, spec, {connection_env_var(spec.connection): url})
    return result


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
        specs: Sequence[SpecBase],
        environ: dict[str, str],
        **settings: Any,
    ) -> Engine:
        contexts = [ContextFile(spec=s, path=f"{s.service_id}.yaml", line=1) for s in specs]
        return Engine(contexts, Settings(**settings), environ)

    return factory


# Real Prometheus and Alertmanager servers, started once per test session ---------------------


@pytest.fixture(scope="session")
def exporter() -> Iterator[Exporter]:
    """The metrics endpoint the session's Prometheus scrapes; tests set its series."""
    metrics = Exporter()
    metrics.server.start()
    try:
        yield metrics
    finally:
        metrics.server.stop()


@pytest.fixture(scope="session")
def prometheus(
    exporter: Exporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping `exporter` every second (and zeroprobe targets on request)."""
    server = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"),
        scrape_targets=[exporter.address],
        remote_read_url=f"http://{exporter.address}/remote-read",
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    """A real Alertmanager; tests tell their alerts apart by a `test` label."""
    with AlertmanagerServer(tmp_path_factory.mktemp("alertmanager")) as server:
        yield server
