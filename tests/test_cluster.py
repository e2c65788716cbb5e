"""A cluster of real `zeroprobe serve` processes (2 shards × 2 replicas) on loopback.

Every id answers from every pod with its owner's document, each id is probed by exactly the
two replicas of its shard (under four different PYTHONHASHSEEDs), /liveness, /api/v1/results
and the page cover the whole cluster, `kill -9` of a pod loses no answer, and a restarted pod
is ready from its sibling's results while its own first round cannot finish.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.cluster_support import FORWARDED, Cluster, QueryTarget, free_ports, write_specs
from zeroprobe.config.topology import Topology, jump_hash, stable_hash64

# Real processes: a few seconds each to start on a busy 2-core machine.
pytestmark = pytest.mark.timeout(180)

SHARDS, REPLICAS = 2, 2
IDS = [f"cluster.probe.{n:02d}" for n in range(24)]


def owner(service_id: str, shards: int = SHARDS) -> int:
    return jump_hash(stable_hash64(service_id), shards)


def pods_of(shard: int) -> set[int]:
    return {shard * REPLICAS + r for r in range(REPLICAS)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    # A long interval: every document stays the same while the test compares them, and a
    # restarted pod's own first round is not what makes it ready.
    write_specs(root / "contexts", IDS, interval="60s", timeout="20s")
    with QueryTarget() as target:
        cluster = Cluster(SHARDS, REPLICAS, root / "contexts", target, root, free_ports(4))
        try:
            for index in range(SHARDS * REPLICAS):
                cluster.start(index)
            for pod in cluster.pods.values():
                pod.wait_ready()
            yield cluster
        finally:
            cluster.stop_all()


def test_ids_are_split_between_the_shards() -> None:
    owners = {owner(sid) for sid in IDS}
    assert owners == {0, 1}, "the test needs ids on both shards"


def test_each_id_is_probed_by_exactly_the_replicas_of_its_shard(cluster: Cluster) -> None:
    probed = cluster.target.probed_by()
    assert set(probed) == set(IDS)
    for service_id in IDS:
        assert probed[service_id] == pods_of(owner(service_id)), service_id


def test_every_pod_answers_every_id_with_an_owners_document(cluster: Cluster) -> None:
    for service_id in IDS:
        # What the owner's replicas hold themselves (a forwarded request is answered locally).
        owned = set()
        for index in pods_of(owner(service_id)):
            status, body = cluster.pods[index].get(f"/{service_id}", {FORWARDED: "1"})
            assert status == 200, (index, service_id, body)
            owned.add(body)
        for index, pod in cluster.pods.items():
            for method in ("PUT", "GET"):
                status, body = (pod.put if method == "PUT" else pod.get)(f"/{service_id}")
                assert status == 200, (index, method, service_id, body)
                assert body in owned, (index, service_id)
                assert json.loads(body)[service_id]["status"] == "GREEN"


def test_a_non_owner_does_not_answer_a_forwarded_request_it_cannot(cluster: Cluster) -> None:
    service_id = next(sid for sid in IDS if owner(sid) == 1)
    status, body = cluster.pods[0].get(f"/{service_id}", {FORWARDED: "1"})
    assert status == 503, body  # never forwarded twice, never a made-up colour
    assert json.loads(body)["status"] == 503


def test_liveness_results_and_page_cover_the_whole_cluster(cluster: Cluster) -> None:
    for pod in cluster.pods.values():
        liveness = pod.json("/liveness")
        assert liveness["status"] == "ok", liveness
        names = {c["name"] for c in liveness["checks"]}  # type: ignore[attr-defined]
        assert names == set(IDS)
        results = pod.json("/api/v1/results")["results"]
        assert {r["service_id"]: r["status"] for r in results} == dict.fromkeys(IDS, "GREEN")  # type: ignore[attr-defined]
        assert all(len(r["history"]) >= 1 for r in results)  # type: ignore[attr-defined]
        status, page = pod.get("/")
        assert status == 200
        assert page.count(b"GREEN") >= len(IDS)
        for service_id in IDS:
            one = pod.json(f"/api/v1/results/{service_id}")["result"]
            assert one["status"] == "GREEN", (pod.index, one)  # type: ignore[index]
            history = pod.json(f"/api/v1/results/{service_id}/history")["results"]
            assert history and history[-1]["status"] == "GREEN"  # type: ignore[index]
        elsewhere = next(sid for sid in IDS if owner(sid) != pod.index // REPLICAS)
        status, detail = pod.get(f"/ui/{elsewhere}")
        assert status == 200 and b"GREEN" in detail


def test_metrics_name_the_shard_and_count_owned_specs(cluster: Cluster) -> None:
    for index, pod in cluster.pods.items():
        status, body = pod.get("/metrics")
        assert status == 200
        text = body.decode()
        shard, replica = divmod(index, REPLICAS)
        assert f'zeroprobe_shard_info{{replica="{replica}",shard="{shard}",shards="2"}} 1.0' in text
        owned = sum(1 for sid in IDS if owner(sid) == shard)
        assert f"zeroprobe_owned_specs {owned:.1f}" in text
        assert "zeroprobe_forward_duration_seconds_bucket" in text
        # Every other pod answers (a peer seen down at start is asked again within a second).
        deadline = time.monotonic() + 5
        while not re.search(r"^zeroprobe_peers_reachable 3\.0$", text, re.MULTILINE):
            assert time.monotonic() < deadline, text[-400:]
            time.sleep(0.2)
            text = pod.get("/metrics")[1].decode()


def test_kill_9_loses_no_answer_and_a_restarted_pod_warms_from_its_sibling(
    cluster: Cluster,
) -> None:
    victim = cluster.pods[1]  # shard 0, replica 1
    victim.kill()
    for pod in (cluster.pods[0], cluster.pods[2], cluster.pods[3]):
        for service_id in IDS:
            status, body = pod.put(f"/{service_id}")
            assert status == 200, (pod.index, service_id, body)
    # Shard 1's pods went to the dead replica first every other time, then to its sibling.
    for index in (2, 3):
        metrics = cluster.pods[index].get("/metrics")[1].decode()
        retried = re.search(
            r'zeroprobe_forwarded_requests_total\{outcome="retried_ok"\} (\S+)', metrics
        )
        assert retried and float(retried.group(1)) >= 1, metrics[-1500:]
    # Its own first round cannot end: the target now answers after the probes' timeout.
    cluster.target.delay_s = 30.0
    cluster.target.clear()
    restarted = cluster.start(1)
    restarted.wait_ready(timeout_s=15)
    readiness = restarted.json("/readyz")
    assert readiness["status"] == "ok"
    log = restarted.log
    assert "warm start:" in log, log
    for service_id in IDS:
        status, body = restarted.put(f"/{service_id}")
        assert status == 200, (service_id, body)
    # It did start its own probes (they hang at the target), and only of its shard's ids.
    started = {sid for pod, sid in cluster.target.queries() if pod == 1}
    assert started <= {sid for sid in IDS if owner(sid) == 0}
    cluster.target.delay_s = 0.0


def test_ownership_is_the_same_under_any_pythonhashseed() -> None:
    code = (
        "from zeroprobe.config.topology import Topology;"
        "t = Topology(shards=5, replicas=1, index=0, peers=tuple('http://x' for _ in range(5)));"
        f"print([t.owner(s) for s in {IDS!r}], hash('x') % 1000)"
    )
    outputs = set()
    salts = set()
    for seed in ("1", "2", "31337"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        owners, salt = out.rsplit(" ", 1)
        outputs.add(owners)
        salts.add(salt)
    assert len(outputs) == 1
    assert len(salts) > 1  # the seeds did change Python's own hash()
    assert Topology(shards=5).owner(IDS[0]) == jump_hash(stable_hash64(IDS[0]), 5)
