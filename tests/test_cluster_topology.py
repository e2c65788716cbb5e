"""The topology from the environment, the stable id hash and jump consistent hashing."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from zeroprobe.cli import EXIT_USAGE, main
from zeroprobe.config.settings import Settings, SettingsError
from zeroprobe.config.topology import Topology, TopologyError, jump_hash, stable_hash64


def reference_jump(key: int, num_buckets: int) -> int:
    """Lamping & Veach's published C++ loop, transcribed with plain ints (mod 2**64)."""
    b, j = -1, 0
    while j < num_buckets:
        b = j
        key = (key * 2862933555777941757 + 1) % 2**64
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


KEYS = [stable_hash64(f"service.{n}") for n in range(2000)]


def test_key_zero_is_in_bucket_zero_for_any_count() -> None:
    assert all(jump_hash(0, buckets) == 0 for buckets in range(1, 200))


def test_jump_hash_matches_the_reference_algorithm() -> None:
    keys = [*KEYS[:300], 1, 2**63, 2**64 - 1, 0xDEADBEEF]
    for buckets in (1, 2, 3, 5, 7, 10, 16, 100, 1000, 65536):
        for key in keys:
            assert jump_hash(key, buckets) == reference_jump(key, buckets), (key, buckets)


def test_jump_hash_spreads_keys_evenly() -> None:
    counts = Counter(jump_hash(key, 4) for key in KEYS)
    assert set(counts) == {0, 1, 2, 3}
    assert all(400 <= n <= 600 for n in counts.values()), counts  # 500 each on average


@pytest.mark.parametrize("buckets", [1, 2, 3, 4, 7])
def test_growing_the_buckets_moves_keys_only_to_the_new_one(buckets: int) -> None:
    moved = 0
    for key in KEYS:
        before, after = jump_hash(key, buckets), jump_hash(key, buckets + 1)
        if before != after:
            assert after == buckets, (key, before, after)
            moved += 1
    share = moved / len(KEYS)
    expected = 1 / (buckets + 1)
    assert abs(share - expected) < 0.05, (share, expected)


def test_stable_hash64_is_the_first_8_bytes_of_blake2b() -> None:
    digest = hashlib.blake2b(b"payments.api.errorrate", digest_size=8).digest()
    assert stable_hash64("payments.api.errorrate") == int.from_bytes(digest, "big")
    assert 0 <= stable_hash64("é") < 2**64


# From the environment --------------------------------------------------------------------------

PEERS4 = "http://a:1,http://b:1,http://c:1,http://d:1"


def topology(**env: str) -> Topology:
    return Topology.from_environ(env)


def test_unset_is_one_process() -> None:
    assert topology() == Topology()
    assert topology().single
    assert topology().owns("anything")
    assert Settings.from_environ({}).topology.single


def test_pod_index_shard_replica_and_peers() -> None:
    t = topology(
        ZEROPROBE_SHARDS="2",
        ZEROPROBE_REPLICAS="2",
        ZEROPROBE_POD_INDEX="3",
        ZEROPROBE_PEERS=PEERS4,
    )
    assert (t.shard, t.replica, t.single) == (1, 1, False)
    assert t.peers_of(0) == ["http://a:1", "http://b:1"]
    assert t.siblings() == ["http://c:1"]
    owners = {t.owner(f"id.{n}") for n in range(50)}
    assert owners == {0, 1}
    assert all(t.owns(f"id.{n}") == (t.owner(f"id.{n}") == 1) for n in range(50))


def test_index_from_the_pod_name_or_hostname_and_a_url_template() -> None:
    env = {
        "ZEROPROBE_SHARDS": "3",
        "ZEROPROBE_PEER_URL": "http://zeroprobe-{index}.zeroprobe-peers:8080",
    }
    t = topology(**env, ZEROPROBE_POD_NAME="zeroprobe-2", HOSTNAME="zeroprobe-0")
    assert t.index == 2
    assert t.peers_of(1) == ["http://zeroprobe-1.zeroprobe-peers:8080"]
    assert topology(**env, HOSTNAME="zeroprobe-1").index == 1
    # A previous S larger than today's: its pods are still named by the template.
    t = topology(**env, HOSTNAME="zeroprobe-0", ZEROPROBE_PREVIOUS_SHARDS="5")
    assert t.url_of(4) == "http://zeroprobe-4.zeroprobe-peers:8080"


def test_a_shrink_keeps_the_removed_shards_pods_valid_and_draining() -> None:
    """3 × 2 pods shrinking to 2 shards: pods 4 and 5 (the removed shard 2) are still valid
    while the rollout runs, and probe exactly what shard 2 probed before."""
    env = {
        "ZEROPROBE_SHARDS": "2",
        "ZEROPROBE_REPLICAS": "2",
        "ZEROPROBE_PREVIOUS_SHARDS": "3",
        "ZEROPROBE_PEERS": ",".join(f"http://p{n}:1" for n in range(6)),
    }
    ids = [f"id.{n}" for n in range(300)]
    pods = [topology(**env, ZEROPROBE_POD_INDEX=str(i)) for i in range(6)]
    assert [p.draining for p in pods] == [False] * 4 + [True] * 2
    assert pods[5].siblings() == ["http://p4:1"]
    assert "draining" in pods[4].describe()
    for service_id in ids:
        previous = jump_hash(stable_hash64(service_id), 3)
        now = jump_hash(stable_hash64(service_id), 2)
        assert [p.owns(service_id) for p in pods] == [
            now == 0,
            now == 0,
            now == 1,
            now == 1,
            previous == 2,
            previous == 2,
        ]
    # Every id of shard 2 moved to shard 0 or 1 (jump hashing moves nothing else).
    moved = {sid for sid in ids if jump_hash(stable_hash64(sid), 3) == 2}
    assert 0.2 < len(moved) / len(ids) < 0.45
    assert all(
        jump_hash(stable_hash64(sid), 3) == jump_hash(stable_hash64(sid), 2)
        for sid in set(ids) - moved
    )
    # Without the previous S, index 4 is out of range as before; a peers list must name
    # the draining pods too.
    with pytest.raises(TopologyError, match=r"^ZEROPROBE_POD_INDEX: .* out of range 0-3"):
        topology(**{**env, "ZEROPROBE_PREVIOUS_SHARDS": ""}, ZEROPROBE_POD_INDEX="4")
    short = ",".join(f"http://p{n}:1" for n in range(4))
    with pytest.raises(
        TopologyError, match=r"^ZEROPROBE_PEERS: expected 6 URL\(s\) \(ZEROPROBE_PREV"
    ):
        topology(**{**env, "ZEROPROBE_PEERS": short}, ZEROPROBE_POD_INDEX="0")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ZEROPROBE_SHARDS": "two"}, "ZEROPROBE_SHARDS"),
        ({"ZEROPROBE_SHARDS": "0"}, "ZEROPROBE_SHARDS"),
        ({"ZEROPROBE_REPLICAS": "-1"}, "ZEROPROBE_REPLICAS"),
        (
            {"ZEROPROBE_SHARDS": "2", "ZEROPROBE_PEERS": "http://a:1,http://b:1"},
            "ZEROPROBE_POD_INDEX",
        ),
        (
            {
                "ZEROPROBE_SHARDS": "2",
                "ZEROPROBE_POD_INDEX": "2",
                "ZEROPROBE_PEERS": "http://a:1,http://b:1",
            },
            "ZEROPROBE_POD_INDEX",
        ),
        (
            {
                "ZEROPROBE_SHARDS": "2",
                "ZEROPROBE_POD_INDEX": "x",
                "ZEROPROBE_PEERS": "http://a:1,http://b:1",
            },
            "ZEROPROBE_POD_INDEX",
        ),
        (
            {
                "ZEROPROBE_SHARDS": "2",
                "HOSTNAME": "zeroprobe-7",
                "ZEROPROBE_PEERS": "http://a:1,http://b:1",
            },
            "HOSTNAME",
        ),
        (
            {"ZEROPROBE_SHARDS": "2", "ZEROPROBE_POD_INDEX": "0", "ZEROPROBE_PEERS": PEERS4},
            "ZEROPROBE_PEERS",
        ),
        ({"ZEROPROBE_SHARDS": "2", "ZEROPROBE_POD_INDEX": "0"}, "ZEROPROBE_PEERS"),
        (
            {"ZEROPROBE_SHARDS": "2", "ZEROPROBE_POD_INDEX": "0", "ZEROPROBE_PEERS": "a:1,b:1"},
            "ZEROPROBE_PEERS",
        ),
        (
            {
                "ZEROPROBE_SHARDS": "2",
                "ZEROPROBE_POD_INDEX": "0",
                "ZEROPROBE_PEERS": "http://a:1,http://b:1",
                "ZEROPROBE_PEER_URL": "http://p-{index}:1",
            },
            "ZEROPROBE_PEERS",
        ),
        (
            {
                "ZEROPROBE_SHARDS": "2",
                "ZEROPROBE_POD_INDEX": "0",
                "ZEROPROBE_PEER_URL": "http://p:1",
            },
            "ZEROPROBE_PEER_URL",
        ),
        (
            {
                "ZEROPROBE_SHARDS": "2",
                "ZEROPROBE_POD_INDEX": "0",
                "ZEROPROBE_PEERS": "http://a:1,http://b:1",
                "ZEROPROBE_PREVIOUS_SHARDS": "0",
            },
            "ZEROPROBE_PREVIOUS_SHARDS",
        ),
    ],
)
def test_a_bad_topology_is_one_line_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(TopologyError) as raised:
        Topology.from_environ(env)
    message = str(raised.value)
    assert message.startswith(f"{variable}:"), message
    assert "\n" not in message
    with pytest.raises(SettingsError, match=f"^{variable}:"):
        Settings.from_environ(env)


def test_serve_with_a_bad_topology_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {
        "ZEROPROBE_SHARDS": "2",
        "ZEROPROBE_POD_INDEX": "5",
        "ZEROPROBE_PEERS": "http://a:1,http://b:1",
    }
    assert main(["serve"], env) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "zeroprobe: ZEROPROBE_POD_INDEX: pod index 5 is out of range 0-1 "
        "(ZEROPROBE_SHARDS × ZEROPROBE_REPLICAS = 2 × 1 pods)"
    ]
