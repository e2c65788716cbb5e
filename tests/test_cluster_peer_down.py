"""One pod of 2 shards whose other shard never answers, with an access token: the internal
endpoints want the token, another shard's id is a JSON 503 with the reason (never a colour),
/liveness names the silent shard, and /api/v1/results marks its probes."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web

from tests.cluster_support import free_ports
from tests.served import Served, served
from zeroprobe.config.topology import Topology
from zeroprobe.simulators.monitoring import ThreadedApp

TOKEN = "cluster-token-0123456789abcdef"
OWN = "payments.alerts.critical"  # shard 0 of 2
OTHERS = "payments.api.errorrate"  # shard 1 of 2


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[Served]:
    nobody = free_ports(2)  # nothing listens there
    topology = Topology(
        shards=2,
        replicas=1,
        index=0,
        peers=tuple(f"http://127.0.0.1:{port}" for port in nobody),
    )
    with served(tmp_path, auth_token=TOKEN, topology=topology) as pod:
        yield pod


def fetch(
    url: str, token: str | None = TOKEN, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_ownership_of_the_two_ids() -> None:
    t = Topology(shards=2, replicas=1, index=0, peers=("http://a", "http://b"))
    assert (t.owner(OWN), t.owner(OTHERS)) == (0, 1)


def test_the_internal_results_endpoint_wants_the_token(pod: Served) -> None:
    status, _, _ = fetch(f"{pod.url}/-/cluster/results", token=None)
    assert status == 401
    status, _, body = fetch(f"{pod.url}/-/cluster/results?shard=0")
    assert status == 200
    payload = json.loads(body)
    assert [r["newest"]["service_id"] for r in payload["results"]] == [OWN]
    assert payload["results"][0]["runs"]
    status, _, body = fetch(f"{pod.url}/-/cluster/results?shard=1")
    assert json.loads(body)["results"] == []
    assert fetch(f"{pod.url}/-/cluster/results?shard=x")[0] == 400
    assert fetch(f"{pod.url}/-/cluster/liveness", token=None)[0] == 401


def test_an_id_of_a_silent_shard_is_a_json_503_with_a_reason(pod: Served) -> None:
    for method in ("PUT", "GET"):
        status, headers, body = fetch(f"{pod.url}/{OTHERS}", method=method)
        assert status == 503, body
        answer = json.loads(body)
        assert answer["status"] == 503
        assert "shard 1" in answer["error"] and answer["reason"]
        assert "GREEN" not in body.decode() and "RED" not in body.decode()
        assert headers["Content-Type"].startswith("application/json")
    status, _, body = fetch(f"{pod.url}/{OWN}", method="PUT")
    assert status == 200 and OWN in json.loads(body)
    metrics = pod.engine.metrics.render().decode()
    assert "zeroprobe_owned_specs 1.0" in metrics
    assert 'zeroprobe_forwarded_requests_total{outcome="unavailable"} 2.0' in metrics


def test_liveness_names_the_silent_shard_and_its_ids(pod: Served) -> None:
    status, _, body = fetch(f"{pod.url}/liveness")
    assert status == 503
    checks = {c["name"]: c for c in json.loads(body)["checks"]}
    assert checks["shard 1"]["ok"] is False
    assert checks[OTHERS]["ok"] is False and "shard 1" in checks[OTHERS]["reason"]
    assert checks[OWN]["ok"] is True
    # Readiness stays local: this pod is ready whatever its peers do.
    assert fetch(f"{pod.url}/readyz")[0] == 200


def test_results_and_page_mark_the_silent_shards_probes(pod: Served) -> None:
    status, _, body = fetch(f"{pod.url}/api/v1/results")
    assert status == 200
    results = {r["service_id"]: r for r in json.loads(body)["results"]}
    assert results[OWN]["status"] is not None
    assert results[OTHERS]["status"] is None
    assert "shard 1 did not answer" in results[OTHERS]["action_body"]
    status, _, page = fetch(f"{pod.url}/")
    assert status == 200 and b"shard 1 did not answer" in page


@contextmanager
def black_hole() -> Iterator[str]:
    """A port that listens and never accepts: once its backlog is full, a connection attempt
    waits for its timeout, as towards a node that is gone."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        fillers = []
        try:
            for _ in range(4):  # fill the accept queue (its length is backlog + 1)
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(sock.getsockname())
                fillers.append(filler)
            yield url
        finally:
            for filler in fillers:
                filler.close()


def test_a_replica_that_stopped_answering_is_asked_last(tmp_path: Path) -> None:
    """Shard 1's replica 0 is a lost node, replica 1 answers: after the first forward finds
    that out (a retry on the sibling), the lost replica is no longer asked first."""
    answered: list[str] = []

    def live_app() -> web.Application:
        async def document(request: web.Request) -> web.Response:
            answered.append(request.match_info["sid"])
            return web.json_response({request.match_info["sid"]: {"status": "GREEN"}})

        async def livez(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        app = web.Application()
        app.router.add_get("/livez", livez)
        app.router.add_route("*", "/{sid}", document)
        return app

    dead = free_ports(2)
    with black_hole() as lost, ThreadedApp(live_app) as live:
        topology = Topology(
            shards=2,
            replicas=2,
            index=0,
            peers=(*(f"http://127.0.0.1:{port}" for port in dead), lost, live.url),
        )
        with served(tmp_path, auth_token=TOKEN, topology=topology) as pod:
            for _ in range(6):
                status, _, body = fetch(f"{pod.url}/{OTHERS}", method="PUT")
                assert status == 200, body
            metrics = pod.engine.metrics.render().decode()
    assert answered == [OTHERS] * 6
    forwarded = {
        outcome: float(value)
        for outcome, value in re.findall(
            r'zeroprobe_forwarded_requests_total\{outcome="(\w+)"\} ([0-9.]+)', metrics
        )
    }
    # Rotation alone would ask the lost replica first every other time (3 retries).
    assert forwarded.get("retried_ok", 0) <= 1, forwarded
    assert forwarded.get("ok", 0) >= 5, forwarded
