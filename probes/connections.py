"""Shared clients, one per connection label, resolved from ZEROPROBE_CONNECTION_<LABEL>."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo import errors as mongo_errors

from probes.errors import ProbeConfigError
from probes.redact import Redactor
from schemas.context_spec import connection_env_var

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 1.0

# Defaults that suit a prober; a URI option of the same name wins.
_CLIENT_DEFAULTS: dict[str, Any] = {
    "appname": "zeroprobe",
    # Polling every heartbeat rather than streaming hello: a prober needs no sub-second
    # failover detection, and it keeps one fewer long-lived socket per member.
    "serverMonitoringMode": "poll",
    "serverSelectionTimeoutMS": 10_000,
    "connectTimeoutMS": 10_000,
    "maxPoolSize": 4,
    "tz_aware": True,
}


class MongoClients:
    """One `AsyncMongoClient` per connection label, created on first use and closed at stop;
    and, for a label that reaches a mongos, one per shard of that cluster."""

    def __init__(self, environ: Mapping[str, str], redact: Redactor) -> None:
        self._environ = environ
        self._redact = redact
        self._clients: dict[str, AsyncMongoClient[dict[str, Any]]] = {}
        # label of the mongos -> shard name -> (URI, client of the shard's replica set)
        self._shards: dict[str, dict[str, tuple[str, AsyncMongoClient[dict[str, Any]]]]] = {}
        # label -> the client being built for it, shared by the runs that ask meanwhile
        self._opening: dict[str, asyncio.Task[AsyncMongoClient[dict[str, Any]]]] = {}

    async def get(self, label: str) -> AsyncMongoClient[dict[str, Any]]:
        """The client of `label`; ProbeConfigError when its variable is unset or invalid."""
        client = self._clients.get(label)
        if client is not None:
            return client
        opening = self._opening.get(label)
        if opening is None:
            uri = self._uri(label)
            opening = asyncio.get_running_loop().create_task(self._open_for(label, uri))
            self._opening[label] = opening
        # Shielded: a run cancelled meanwhile does not cancel the build the others wait for.
        return await asyncio.shield(opening)

    async def _open_for(self, label: str, uri: str) -> AsyncMongoClient[dict[str, Any]]:
        try:
            client = await self._open(label, uri)
        finally:
            if self._opening.get(label) is asyncio.current_task():
                del self._opening[label]
        self._clients[label] = client
        return client

    async def shard(
        self,
        label: str,
        shard: str,
        hosts: Sequence[str],
        set_name: str,
        credentials: str | None = None,
    ) -> AsyncMongoClient[dict[str, Any]]:
        """The client of one shard of the cluster behind `label` (a mongos): the shard's
        members and set name with the user, password and options of `credentials` (another
        label, for shard-local users) or else of `label`. A shard whose members changed gets
        a new client; the old one is closed."""
        uri = shard_uri(self._uri(credentials or label), hosts, set_name)
        clients = self._shards.setdefault(label, {})
        known = clients.get(shard)
        if known is not None and known[0] == uri:
            return known[1]
        client = await self._open(credentials or label, uri)
        raced = clients.get(shard)
        if raced is not None and raced[0] == uri:
            # Another run of the same label built it meanwhile; ours never connected.
            return raced[1]
        known = raced
        clients[shard] = (uri, client)
        if known is not None:
            await _close_client(f"{label}/{shard}", known[1])
        return client

    async def retire_shards(self, label: str, keep: Collection[str]) -> None:
        """Close the shard clients of `label` whose shard is not in `keep` (it left the
        cluster), concurrently."""
        clients = self._shards.get(label, {})
        gone = [(shard, clients.pop(shard)[1]) for shard in list(clients) if shard not in keep]
        await asyncio.gather(*(_close_client(f"{label}/{shard}", c) for shard, c in gone))

    def shard_names(self, label: str) -> list[str]:
        """Shards of `label` with a client (for diagnostics and tests)."""
        return sorted(self._shards.get(label, {}))

    def _uri(self, label: str) -> str:
        variable = connection_env_var(label)
        uri = self._environ.get(variable, "").strip()
        if not uri:
            raise ProbeConfigError(f"connection {label!r}: {variable} is not set")
        self._redact.add(uri)
        return uri

    async def _open(self, label: str, uri: str) -> AsyncMongoClient[dict[str, Any]]:
        """A new client of `uri`, built in a worker thread: a TLS client loads the system's
        CA bundle as it is built (about 50 ms of CPU, more on a busy machine), which on the
        event loop would hold up every request and probe meanwhile. The client binds to the
        loop only when first used, so building it elsewhere is safe."""
        self._redact.add(uri)
        try:
            return await asyncio.to_thread(_build_client, uri)
        except (mongo_errors.PyMongoError, ValueError, TypeError) as exc:
            raise ProbeConfigError(
                f"connection {label!r}: {connection_env_var(label)} is not a usable MongoDB "
                f"URI: {self._redact(str(exc))}"
            ) from None

    @property
    def open_labels(self) -> list[str]:
        """Labels with a client (for diagnostics)."""
        return sorted(self._clients)

    async def close(self) -> None:
        """Close every client; errors on close are logged, not raised."""
        self._cancel_opening(self._opening)
        for label in list(self._shards):
            await self.retire_shards(label, ())
        clients, self._clients = self._clients, {}
        for label, client in clients.items():
            await _close_client(label, client)

    async def close_label(self, label: str) -> None:
        """Close the client of `label`, if any (its last probe is gone); a later get() opens
        a new one. The client leaves the pool before closing, so no new run picks it up."""
        self._cancel_opening([label])
        await self.retire_shards(label, ())
        self._shards.pop(label, None)
        client = self._clients.pop(label, None)
        if client is not None:
            await _close_client(label, client)

    def _cancel_opening(self, labels: Collection[str]) -> None:
        # A client still being built has never connected: dropping it leaves nothing open.
        for label in list(labels):
            opening = self._opening.pop(label, None)
            if opening is not None:
                opening.cancel()


def _build_client(uri: str) -> AsyncMongoClient[dict[str, Any]]:
    lowered = uri.lower()
    options = {k: v for k, v in _CLIENT_DEFAULTS.items() if f"{k.lower()}=" not in lowered}
    return AsyncMongoClient(uri, **options)


async def _close_client(label: str, client: AsyncMongoClient[dict[str, Any]]) -> None:
    try:
        # close() sends endSessions; with every member down it would wait out the
        # whole server-selection timeout.
        with pymongo.timeout(CLOSE_TIMEOUT_S):
            await client.close()
    except Exception:
        log.warning("closing the MongoDB client of %r failed", label, exc_info=True)


#: Options of a mongos URI that do not apply to a shard's replica set.
_ROUTER_ONLY_OPTIONS = frozenset(
    {"replicaset", "directconnection", "loadbalanced", "srvservicename", "srvmaxhosts"}
)


def shard_uri(base: str, hosts: Sequence[str], set_name: str) -> str:
    """`base` (a mongos URI) with its hosts replaced by a shard's members and `replicaSet`
    set to the shard's set: user, password, database and the other options are kept.

    A `mongodb+srv` URI becomes `mongodb` with `tls=true` (SRV's default) unless it says
    otherwise; options SRV would read from a TXT record (authSource) are not looked up.
    """
    scheme, _, rest = base.partition("://")
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, _ = authority.rpartition("@")
    path, _, query = tail.lstrip("/").partition("?")
    options = [
        option
        for option in query.replace(";", "&").split("&")
        if option and option.split("=", 1)[0].lower() not in _ROUTER_ONLY_OPTIONS
    ]
    names = {option.split("=", 1)[0].lower() for option in options}
    if scheme.lower() == "mongodb+srv" and not names & {"tls", "ssl"}:
        options.append("tls=true")
    if set_name:
        options.append(f"replicaSet={set_name}")
    query = "&".join(options)
    return f"mongodb://{userinfo}{at}{','.join(hosts)}/{path}" + (f"?{query}" if query else "")
