"""zeroprobe's own /metrics: clean for `promtool check metrics`, and scraped by a real Prometheus.

The body comes from the real HTTP endpoint of an engine that has run every kind, so each
metric family carries samples (successes and errors alike).
"""

from __future__ import annotations

import asyncio
import gzip
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient, AiohttpServer

from tests.conftest import AlertsSpecFactory, EngineFactory, QuerySpecFactory, SpecFactory
from tests.servers import PrometheusServer, free_port
from tests.test_metrics_cache import PROMETHEUS_2_ACCEPT, samples
from zeroprobe import __version__
from zeroprobe.engine.core import Engine
from zeroprobe.simulators.mongo import SimulatedReplicaSet
from zeroprobe.web.app import create_app

# PyMongo may leave a socket to the garbage collector when its client closes (see
# test_probe_wire.py); only that warning is ignored here.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")


@pytest.fixture
async def busy_engine(
    replica_set: SimulatedReplicaSet,
    prometheus: PrometheusServer,
    *,
    make_engine: EngineFactory,
    make_spec: SpecFactory,
    make_query_spec: QuerySpecFactory,
    make_alerts_spec: AlertsSpecFactory,
) -> AsyncIterator[Engine]:
    """An engine whose every kind has run: Mongo and Prometheus measured, Alertmanager refused."""
    engine = make_engine(
        [make_spec(), make_query_spec(query="vector(1)"), make_alerts_spec()],
        {
            "ZEROPROBE_CONNECTION_RS": replica_set.uri,
            "ZEROPROBE_CONNECTION_PROM": prometheus.url,
            "ZEROPROBE_CONNECTION_AM": f"http://127.0.0.1:{free_port()}",
        },
    )
    try:
        for service_id in engine.contexts:
            await engine.run_once(service_id)
        yield engine
    finally:
        await engine.stop()


async def test_promtool_finds_nothing_to_say_about_metrics(
    busy_engine: Engine, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(create_app(busy_engine, start_engine=False))
    response = await client.get("/metrics")
    body = await response.read()
    assert response.status == 200
    assert b"zeroprobe_mongo_replication_lag_seconds{" in body
    assert b"zeroprobe_mongo_oplog_window_seconds{" in body
    assert b"zeroprobe_mongo_oplog_headroom_seconds{" in body
    assert b'outcome="error"' in body and b'outcome="success"' in body

    checked = await asyncio.to_thread(
        subprocess.run,
        ["promtool", "check", "metrics"],
        input=body,
        capture_output=True,
        timeout=30,
        check=False,
    )

    assert (checked.returncode, checked.stdout, checked.stderr) == (0, b"", b"")


async def test_a_real_prometheus_scrapes_zeroprobe(
    busy_engine: Engine, prometheus: PrometheusServer, aiohttp_server: AiohttpServer
) -> None:
    server = await aiohttp_server(create_app(busy_engine, start_engine=False))
    target = f"127.0.0.1:{server.port}"
    prometheus.add_file_target(target)
    where = f'job="zeroprobe", instance="{target}"'

    up = await asyncio.to_thread(prometheus.wait_for, f"up{{{where}}} == 1", bool)
    build = await asyncio.to_thread(prometheus.wait_for, f"zeroprobe_build_info{{{where}}}", bool)
    statuses = await asyncio.to_thread(
        prometheus.wait_for, f"zeroprobe_probe_status{{{where}}}", lambda r: len(r) == 3
    )

    assert len(up) == 1
    assert [(s["metric"]["version"], s["value"][1]) for s in build] == [(__version__, "1")]
    newest = {sid: busy_engine.store.newest(sid) for sid in busy_engine.contexts}
    scraped: dict[str, Any] = {s["metric"]["service_id"]: s["value"][1] for s in statuses}
    assert scraped == {
        sid: str(result.grade.rank) for sid, result in newest.items() if result is not None
    }
    assert scraped["test.am.alerts"] == "2"  # its Alertmanager refused the connection: RED


async def test_scraped_as_prometheus_does_openmetrics_gzipped(
    busy_engine: Engine, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(create_app(busy_engine, start_engine=False))
    response = await client.get(
        "/metrics",
        headers={"Accept": PROMETHEUS_2_ACCEPT, "Accept-Encoding": "gzip"},
        auto_decompress=False,
    )
    zipped = await response.read()
    plain_response = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    plain = await plain_response.read()
    head = await client.head("/metrics", headers={"Accept-Encoding": "gzip"})

    assert response.status == 200
    assert response.headers["Content-Type"] == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert int(response.headers["Content-Length"]) == len(zipped)
    body = gzip.decompress(zipped)
    assert body.endswith(b"\n# EOF\n") and body.count(b"# EOF") == 1
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}  # type: ignore[no-untyped-call]
    runs = families["zeroprobe_probe_runs"]
    assert runs.type == "counter"
    assert {s.name for s in runs.samples} == {"zeroprobe_probe_runs_total"}
    assert families["zeroprobe_probe_duration_seconds"].unit == "seconds"
    assert families["zeroprobe_mongo_replication_lag_seconds"].unit == "seconds"
    assert b"# UNIT zeroprobe_probe_start_delay_seconds seconds\n" in body
    # The same samples as the classic text format of the same moment, run counters aside
    # (the histograms and runs do not change between the two requests: no probe runs).
    assert samples(body, "openmetrics") == samples(plain, "text")
    assert "Content-Encoding" not in plain_response.headers
    assert head.status == 200 and head.headers["Content-Encoding"] == "gzip"
