"""Where this pod stands in a cluster of shards and replicas (ZEROPROBE_SHARDS and friends).

S shards of R replicas each: pod i (0 … S·R−1) is replica i % R of shard i // R. A service id
belongs to shard `jump_hash(stable_hash64(id), S)`: every pod computes the same owner without
talking to any other (the hash of the id's bytes, never Python's salted `hash()`), and growing
from S to S+1 shards moves about 1/(S+1) of the ids, all of them to the new shard (jump
consistent hash, Lamping & Veach 2014, https://arxiv.org/abs/1406.2294).

Unset, zeroprobe is one process (S = R = 1), exactly as without a cluster.

- ZEROPROBE_SHARDS (S, default 1), ZEROPROBE_REPLICAS (R, default 1);
- ZEROPROBE_POD_INDEX (i); when unset and S·R > 1, the ordinal at the end of
  ZEROPROBE_POD_NAME or else HOSTNAME (a StatefulSet's `zeroprobe-3`);
- the peers, one of: ZEROPROBE_PEER_URL, a template with `{index}` such as
  `http://zeroprobe-{index}.zeroprobe-peers:8080`, or ZEROPROBE_PEERS, the base URLs of pods
  0 … S·R−1 in order, comma-separated;
- ZEROPROBE_PREVIOUS_SHARDS (optional): the S before a reshard, set by the rollout that changes
  S. While pods disagree about S, a pod that has no result for an id asks the id's previous
  owner too (zeroprobe/web/cluster.py), so no known id answers 503 during the change.

Shrinking (ZEROPROBE_PREVIOUS_SHARDS = P > S): the pods of the shards that go away, index
S·R … P·R−1, stay valid while the rollout runs. Such a pod is *draining*: it keeps probing
the ids its shard owned under P (they are still its own), answers for them, and the pods
that take them over ask it for their results (their warm start, and any request before their
first run), so none of those ids answers 503 while the others restart. Scale the StatefulSet
down to S·R once the rollout is done (docs/scaling.md, "Shrinking").
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

_MASK64 = (1 << 64) - 1
_ORDINAL = re.compile(r"-([0-9]+)$")


class TopologyError(ValueError):
    """The topology variables describe no possible cluster; the message names the variable."""


def stable_hash64(service_id: str) -> int:
    """A 64-bit hash of the id that is the same in every process (BLAKE2b, 8 bytes)."""
    digest = hashlib.blake2b(service_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def jump_hash(key: int, buckets: int) -> int:
    """Jump consistent hash (Lamping & Veach): the bucket in 0 … buckets−1 of a 64-bit key.

    Growing `buckets` by one moves a key only to the new bucket, and about 1/buckets of them.
    """
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    key &= _MASK64
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & _MASK64
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


@dataclass(frozen=True, slots=True)
class Topology:
    """This pod's place: `shards` × `replicas` pods, this one at `index`; `peers` holds the
    base URL of every pod by index (this one's included); `peer_url` the template they came
    from, if any (it also names pods of a previous, larger S)."""

    shards: int = 1
    replicas: int = 1
    index: int = 0
    peers: tuple[str, ...] = ()
    peer_url: str | None = None
    previous_shards: int | None = None

    @property
    def single(self) -> bool:
        """One process, no peers: zeroprobe as without a cluster."""
        return self.shards * self.replicas == 1

    @property
    def draining(self) -> bool:
        """A pod of a shard that a shrink removes (index ≥ S·R while ZEROPROBE_PREVIOUS_SHARDS
        is larger): it probes its previous ids until it is scaled away."""
        return self.index >= self.shards * self.replicas

    @property
    def shard(self) -> int:
        """The shard this pod belongs to."""
        return self.index // self.replicas

    @property
    def replica(self) -> int:
        """This pod's place among its shard's replicas (0 sends direct notifications)."""
        return self.index % self.replicas

    def url_of(self, index: int) -> str | None:
        """The base URL of pod `index`, None when no variable names it."""
        if 0 <= index < len(self.peers):
            return self.peers[index]
        if self.peer_url is not None and index >= 0:
            return self.peer_url.replace("{index}", str(index)).rstrip("/")
        return None

    def peers_of(self, shard: int) -> list[str]:
        """Base URLs of the replicas of `shard`, by replica."""
        urls = (self.url_of(shard * self.replicas + r) for r in range(self.replicas))
        return [url for url in urls if url is not None]

    def siblings(self) -> list[str]:
        """Base URLs of the other replicas of this pod's shard."""
        first = self.shard * self.replicas
        urls = (self.url_of(first + r) for r in range(self.replicas) if r != self.replica)
        return [url for url in urls if url is not None]

    def owner(self, service_id: str) -> int:
        """The shard that probes `service_id`."""
        if self.shards == 1:
            return 0
        return jump_hash(stable_hash64(service_id), self.shards)

    def owns(self, service_id: str) -> bool:
        """True when this pod's shard probes `service_id` (a draining pod: the ids its shard
        owned before the shrink)."""
        if self.draining:
            return self.previous_owner(service_id) == self.shard
        return self.shards == 1 or self.owner(service_id) == self.shard

    def previous_owner(self, service_id: str) -> int | None:
        """The shard that probed `service_id` before the reshard (ZEROPROBE_PREVIOUS_SHARDS),
        None when no reshard is under way."""
        if self.previous_shards is None or self.previous_shards == self.shards:
            return None
        return jump_hash(stable_hash64(service_id), self.previous_shards)

    def describe(self) -> str:
        """One log line: where this pod stands."""
        if self.single:
            return "topology: one process (no shards, no replicas)"
        text = (
            f"topology: pod {self.index} = shard {self.shard} of {self.shards}, "
            f"replica {self.replica} of {self.replicas}"
        )
        if self.previous_shards is not None:
            text += f"; resharding from {self.previous_shards} shard(s)"
        if self.draining:
            text = (
                f"topology: pod {self.index} = shard {self.shard} of the previous "
                f"{self.previous_shards}, replica {self.replica} of {self.replicas}, draining: "
                f"it probes its previous ids until it is scaled away (the cluster now has "
                f"{self.shards} shard(s))"
            )
        return text

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Topology:
        """The topology the variables describe; TopologyError names the variable at fault."""
        shards = _count(environ, "ZEROPROBE_SHARDS")
        replicas = _count(environ, "ZEROPROBE_REPLICAS")
        previous = (
            _count(environ, "ZEROPROBE_PREVIOUS_SHARDS")
            if environ.get("ZEROPROBE_PREVIOUS_SHARDS", "").strip()
            else None
        )
        # While a shrink rolls out, the pods of the removed shards are still there (draining).
        pods = max(shards, previous or 0) * replicas
        counted = (
            f"ZEROPROBE_PREVIOUS_SHARDS × ZEROPROBE_REPLICAS = {previous} × {replicas}"
            if previous is not None and previous > shards
            else f"ZEROPROBE_SHARDS × ZEROPROBE_REPLICAS = {shards} × {replicas}"
        )
        template = environ.get("ZEROPROBE_PEER_URL", "").strip()
        listed = environ.get("ZEROPROBE_PEERS", "").strip()
        if template and listed:
            raise TopologyError(
                "ZEROPROBE_PEERS: set either ZEROPROBE_PEERS or ZEROPROBE_PEER_URL, not both"
            )
        if pods == 1 and not template and not listed:
            return cls()
        index = _pod_index(environ, pods, counted)
        if template:
            if "{index}" not in template:
                raise TopologyError(
                    f"ZEROPROBE_PEER_URL: expected a URL with {{index}}, got {template!r}"
                )
            _check_url("ZEROPROBE_PEER_URL", template.replace("{index}", "0"))
            peers = tuple(template.replace("{index}", str(i)).rstrip("/") for i in range(pods))
            return cls(shards, replicas, index, peers, template, previous)
        if listed:
            peers = tuple(url.strip().rstrip("/") for url in listed.split(","))
            for url in peers:
                _check_url("ZEROPROBE_PEERS", url)
            if len(peers) != pods:
                raise TopologyError(
                    f"ZEROPROBE_PEERS: expected {pods} URL(s) ({counted}), got {len(peers)}"
                )
            return cls(shards, replicas, index, peers, None, previous)
        raise TopologyError(
            f"ZEROPROBE_PEERS: {shards} shard(s) × {replicas} replica(s) need the peers' URLs: "
            "set ZEROPROBE_PEER_URL (a template with {index}) or ZEROPROBE_PEERS"
        )


def _count(environ: Mapping[str, str], name: str) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return 1
    try:
        value = int(raw)
    except ValueError:
        raise TopologyError(f"{name}: expected a whole number of at least 1, got {raw!r}") from None
    if value < 1:
        raise TopologyError(f"{name}: expected a whole number of at least 1, got {value}")
    return value


def _pod_index(environ: Mapping[str, str], pods: int, counted: str) -> int:
    raw = environ.get("ZEROPROBE_POD_INDEX", "").strip()
    name = "ZEROPROBE_POD_INDEX"
    if not raw and pods == 1:
        return 0
    if not raw:
        for source in ("ZEROPROBE_POD_NAME", "HOSTNAME"):
            found = _ORDINAL.search(environ.get(source, "").strip())
            if found:
                raw, name = found.group(1), source
                break
        else:
            raise TopologyError(
                "ZEROPROBE_POD_INDEX: not set, and neither ZEROPROBE_POD_NAME nor HOSTNAME "
                "ends with the pod's ordinal (like zeroprobe-3)"
            )
    try:
        index = int(raw)
    except ValueError:
        raise TopologyError(f"{name}: expected the pod's index, got {raw!r}") from None
    if not 0 <= index < pods:
        raise TopologyError(
            f"{name}: pod index {index} is out of range 0-{pods - 1} ({counted} pods)"
        )
    return index


def _check_url(name: str, url: str) -> None:
    if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
        raise TopologyError(f"{name}: expected http(s) URLs, got {url!r}")
