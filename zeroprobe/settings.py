"""Service settings from the command line and ZEROPROBE_* environment variables."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from zeroprobe.auth import AuthConfigError, protected_from_environ, token_from_environ
from zeroprobe.durations import parse_duration_s

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_CONTEXTS = "contexts"
DEFAULT_LIVENESS_MAX_AGE_S = 180.0
DEFAULT_CONTEXTS_POLL_S = 1.0
DEFAULT_REQUEST_READ_TIMEOUT_S = 10.0
DEFAULT_KEEPALIVE_TIMEOUT_S = 75.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service needs besides the specs."""

    contexts: str = DEFAULT_CONTEXTS
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    liveness_max_age_s: float = DEFAULT_LIVENESS_MAX_AGE_S
    # Longest spread of the first runs after start, so many probes do not fire at once.
    first_run_spread_s: float = 5.0
    shutdown_timeout_s: float = 3.0
    # How often `serve` looks for changes in the contexts folder; 0: only SIGHUP and
    # POST /-/reload reload. A change is applied once two looks agree (1-2 polls late).
    contexts_poll_s: float = DEFAULT_CONTEXTS_POLL_S
    # A client must send a whole request (head and body) within this time from its first byte
    # (or from connecting), or its connection is closed: slow or silent clients hold no
    # connection for long (server.py). Idle keep-alive connections close after the other.
    request_read_timeout_s: float = DEFAULT_REQUEST_READ_TIMEOUT_S
    keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S
    # Access control (auth.py): the token every protected endpoint requires (None: off; never
    # in a repr, so never in a log line), and the open endpoints closed to anonymous clients.
    auth_token: str | None = dataclasses.field(default=None, repr=False)
    auth_protect: frozenset[str] = frozenset()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **overrides: object) -> Settings:
        """Settings from ZEROPROBE_* variables; non-None `overrides` (CLI flags) win."""
        values: dict[str, object] = {}
        if environ.get("ZEROPROBE_CONTEXTS"):
            values["contexts"] = environ["ZEROPROBE_CONTEXTS"]
        if environ.get("ZEROPROBE_HOST"):
            values["host"] = environ["ZEROPROBE_HOST"]
        if environ.get("ZEROPROBE_PORT"):
            values["port"] = _port(environ["ZEROPROBE_PORT"], "ZEROPROBE_PORT")
        if environ.get("ZEROPROBE_LIVENESS_MAX_AGE"):
            values["liveness_max_age_s"] = _duration(
                environ["ZEROPROBE_LIVENESS_MAX_AGE"], "ZEROPROBE_LIVENESS_MAX_AGE"
            )
        poll = environ.get("ZEROPROBE_CONTEXTS_POLL", "").strip()
        if poll:
            values["contexts_poll_s"] = (
                0.0 if poll in ("0", "off") else _duration(poll, "ZEROPROBE_CONTEXTS_POLL")
            )
        for name, field in (
            ("ZEROPROBE_REQUEST_READ_TIMEOUT", "request_read_timeout_s"),
            ("ZEROPROBE_KEEPALIVE_TIMEOUT", "keepalive_timeout_s"),
        ):
            if environ.get(name, "").strip():
                values[field] = _duration(environ[name], name)
        try:
            token = token_from_environ(environ)
            values["auth_token"] = token
            values["auth_protect"] = protected_from_environ(environ, token)
        except AuthConfigError as exc:
            raise SettingsError(str(exc)) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


class SettingsError(ValueError):
    """A setting has a value the service cannot use."""


def _port(value: str, name: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise SettingsError(f"{name}: expected a port number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise SettingsError(f"{name}: port {port} is out of range 0-65535")
    return port


def _duration(value: str, name: str) -> float:
    try:
        return parse_duration_s(value)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def result_age_limit_s(settings: Settings, interval_s: float, timeout_s: float) -> float:
    """Age past which a result is stale (/liveness fails, the page marks it): the configured
    limit, or one interval plus timeout for probes that run less often than that."""
    return max(settings.liveness_max_age_s, interval_s + timeout_s)
