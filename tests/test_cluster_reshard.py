"""Reshards under load, the way a StatefulSet rolls, while every id is PUT through the ready
pods all along: no known id ever answers anything but 200.

- Growing 1 shard × 2 replicas to 2 × 2: the new shard's pods start, then the old pods restart
  one at a time with the new ZEROPROBE_SHARDS and ZEROPROBE_PREVIOUS_SHARDS; the ids that move
  (about half) all move to the new shard.
- Shrinking 2 × 2 to 1 × 2: every pod restarts with the new S and the previous one, highest
  ordinal first (the removed shard's pods come back draining: they keep probing their ids),
  then the StatefulSet is scaled down; shard 0 ends up probing every id.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cluster_support import Cluster, Pod, QueryTarget, free_ports, write_specs
from zeroprobe.config.topology import jump_hash, stable_hash64

# Real processes: a few seconds each to start on a busy 2-core machine.
pytestmark = pytest.mark.timeout(180)

REPLICAS = 2
IDS = [f"reshard.probe.{n:02d}" for n in range(40)]


@dataclass
class Load:
    """PUTs every id, round after round, each through a random pod of `serving`."""

    serving: list[Pod]
    lock: threading.Condition = field(default_factory=threading.Condition)
    sent: int = 0
    failures: list[tuple[int, str, int, bytes]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = random.Random(15)
        while not self.stop.is_set():
            for service_id in IDS:
                with self.lock:
                    pod = rng.choice(self.serving)
                try:
                    status, body = pod.put(f"/{service_id}")
                except OSError as exc:
                    status, body = 0, repr(exc).encode()
                with self.lock:
                    if status != 200:
                        self.failures.append((pod.index, service_id, status, body))
                    self.sent += 1
                    self.lock.notify_all()

    def serve_through(self, pod: Pod) -> None:
        with self.lock:
            self.serving.append(pod)

    def finish(self, rounds: int = 3) -> None:
        """A few more rounds through the pods serving now, then stop; no failure at all."""
        with self.lock:
            target = self.sent + len(IDS) * rounds
            assert self.lock.wait_for(lambda: self.sent >= target, timeout=30)
        self.stop.set()

    def drain(self, pod: Pod) -> None:
        """Take `pod` out of the rotation (a terminating pod leaves the Service's endpoints)
        and wait until the request that may have picked it has ended."""
        with self.lock:
            self.serving.remove(pod)
            target = self.sent + 2
            assert self.lock.wait_for(lambda: self.sent >= target, timeout=10)


@pytest.fixture
def target() -> Iterator[QueryTarget]:
    with QueryTarget() as target:
        yield target


def test_growing_from_1_to_2_shards_moves_half_the_ids_and_never_answers_503(
    tmp_path: Path, target: QueryTarget
) -> None:
    write_specs(tmp_path / "contexts", IDS, interval="1s", timeout="500ms")
    old = Cluster(1, REPLICAS, tmp_path / "contexts", target, tmp_path, free_ports(4))
    new_env = {"ZEROPROBE_PREVIOUS_SHARDS": "1"}
    try:
        for index in (0, 1):
            old.start(index)
        for index in (0, 1):
            old.pods[index].wait_ready()
        load = Load(serving=[old.pods[0], old.pods[1]])
        worker = threading.Thread(target=load.run, daemon=True)
        worker.start()
        # The new shard's pods: ready at once with the previous owners' results.
        for index in (2, 3):
            old.start(index, shards=2, **new_env)
        for index in (2, 3):
            old.pods[index].wait_ready()
            load.serve_through(old.pods[index])
        # Then the old pods, one at a time, highest ordinal first.
        for index in (1, 0):
            load.drain(old.pods[index])
            old.pods[index].kill(signal.SIGTERM)
            old.start(index, shards=2, **new_env).wait_ready()
            load.serve_through(old.pods[index])
        load.finish()
        worker.join(10)
        assert not load.failures, load.failures[:5]
        assert load.sent > 6 * len(IDS)

        # Who probes what now: a few rounds (1 s interval) seen from the target.
        moved = {sid for sid in IDS if jump_hash(stable_hash64(sid), 2) == 1}
        assert 0.3 < len(moved) / len(IDS) < 0.7
        expected = {sid: {2, 3} if sid in moved else {0, 1} for sid in IDS}
        assert_probed_by(target, expected)
        assert_every_pod_shows_every_id(list(old.pods.values()))
    finally:
        old.stop_all()


def test_shrinking_from_2_to_1_shard_with_draining_pods_never_answers_503(
    tmp_path: Path, target: QueryTarget
) -> None:
    write_specs(tmp_path / "contexts", IDS, interval="1s", timeout="500ms")
    cluster = Cluster(2, REPLICAS, tmp_path / "contexts", target, tmp_path, free_ports(4))
    new_env = {"ZEROPROBE_PREVIOUS_SHARDS": "2"}
    try:
        for index in range(4):
            cluster.start(index)
        for index in range(4):
            cluster.pods[index].wait_ready()
        load = Load(serving=list(cluster.pods.values()))
        worker = threading.Thread(target=load.run, daemon=True)
        worker.start()
        # The rollout: every pod restarts with S = 1, highest ordinal first. Pods 3 and 2
        # (shard 1, which goes away) come back draining, from each other's results.
        for index in (3, 2, 1, 0):
            load.drain(cluster.pods[index])
            cluster.pods[index].kill(signal.SIGTERM)
            pod = cluster.start(index, shards=1, **new_env)
            pod.wait_ready()
            load.serve_through(pod)
            if index >= 2:
                assert "draining" in pod.log
        # Shard 1's ids are probed by its draining pods until they go, and shard 0 has them
        # from its warm start: the scale-down loses no answer.
        moved = {sid for sid in IDS if jump_hash(stable_hash64(sid), 2) == 1}
        assert 0.3 < len(moved) / len(IDS) < 0.7
        assert_probed_by(target, {sid: {0, 1, 2, 3} if sid in moved else {0, 1} for sid in IDS})
        for index in (3, 2):
            load.drain(cluster.pods[index])
            cluster.pods[index].kill(signal.SIGTERM)
        load.finish()
        worker.join(10)
        assert not load.failures, load.failures[:5]

        assert_probed_by(target, {sid: {0, 1} for sid in IDS})
        assert_every_pod_shows_every_id([cluster.pods[0], cluster.pods[1]])
    finally:
        cluster.stop_all()


def assert_probed_by(target: QueryTarget, expected: dict[str, set[int]]) -> None:
    """Who probes what now: a few rounds (1 s interval) seen from the target."""
    target.clear()
    deadline = time.monotonic() + 10
    while target.probed_by() != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    probed = target.probed_by()
    for service_id in IDS:
        assert probed.get(service_id) == expected[service_id], service_id


def assert_every_pod_shows_every_id(pods: list[Pod]) -> None:
    for pod in pods:
        status, body = pod.get("/api/v1/results")
        assert status == 200
        results = json.loads(body)["results"]
        assert {r["service_id"] for r in results if r["status"]} == set(IDS)
