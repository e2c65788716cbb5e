"""Shared clients, one per connection label, resolved from ZEROPROBE_CONNECTION_<LABEL>."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo import errors as mongo_errors

from schemas.context_spec import connection_env_var
from zeroprobe.errors import ProbeConfigError
from zeroprobe.redact import Redactor

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
    """One `AsyncMongoClient` per connection label, created on first use and closed at stop."""

    def __init__(self, environ: Mapping[str, str], redact: Redactor) -> None:
        self._environ = environ
        self._redact = redact
        self._clients: dict[str, AsyncMongoClient[dict[str, Any]]] = {}

    def get(self, label: str) -> AsyncMongoClient[dict[str, Any]]:
        """The client of `label`; ProbeConfigError when its variable is unset or invalid."""
        client = self._clients.get(label)
        if client is not None:
            return client
        variable = connection_env_var(label)
        uri = self._environ.get(variable, "").strip()
        if not uri:
            raise ProbeConfigError(f"connection {label!r}: {variable} is not set")
        self._redact.add(uri)
        lowered = uri.lower()
        options = {k: v for k, v in _CLIENT_DEFAULTS.items() if f"{k.lower()}=" not in lowered}
        try:
            client = AsyncMongoClient(uri, **options)
        except (mongo_errors.PyMongoError, ValueError, TypeError) as exc:
            raise ProbeConfigError(
                f"connection {label!r}: {variable} is not a usable MongoDB URI: "
                f"{self._redact(str(exc))}"
            ) from None
        self._clients[label] = client
        return client

    @property
    def open_labels(self) -> list[str]:
        """Labels with a client (for diagnostics)."""
        return sorted(self._clients)

    async def close(self) -> None:
        """Close every client; errors on close are logged, not raised."""
        clients, self._clients = self._clients, {}
        for label, client in clients.items():
            await _close_client(label, client)

    async def close_label(self, label: str) -> None:
        """Close the client of `label`, if any (its last probe is gone); a later get() opens
        a new one. The client leaves the pool before closing, so no new run picks it up."""
        client = self._clients.pop(label, None)
        if client is not None:
            await _close_client(label, client)


async def _close_client(label: str, client: AsyncMongoClient[dict[str, Any]]) -> None:
    try:
        # close() sends endSessions; with every member down it would wait out the
        # whole server-selection timeout.
        with pymongo.timeout(CLOSE_TIMEOUT_S):
            await client.close()
    except Exception:
        log.warning("closing the MongoDB client of %r failed", label, exc_info=True)
