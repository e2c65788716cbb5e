"""Service settings from the command line and ZEROPROBE_* environment variables."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from schemas.durations import parse_duration_s
from zeroprobe.config.access import AuthConfigError, protected_from_environ, token_from_environ
from zeroprobe.config.topology import Topology, TopologyError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_CONTEXTS = "contexts"
DEFAULT_LIVENESS_MAX_AGE_S = 180.0
DEFAULT_CONTEXTS_POLL_S = 1.0
DEFAULT_REQUEST_READ_TIMEOUT_S = 10.0
DEFAULT_KEEPALIVE_TIMEOUT_S = 75.0
DEFAULT_DATA_DIR = "."


class WatchMode(StrEnum):
    """How `serve` notices changes of the contexts folder (ZEROPROBE_CONTEXTS_WATCH)."""

    #: Change notification (inotify), unless the folder is on a network or FUSE file system,
    #: where a change made on another machine raises no event: polling there.
    AUTO = "auto"
    #: Change notification wherever the folder is (polling only if it cannot be set up).
    NOTIFY = "notify"
    #: Polling: the folder listing and the files' stat data every ZEROPROBE_CONTEXTS_POLL.
    POLL = "poll"


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
    # 0: no folder watch, only SIGHUP and POST /-/reload reload. Otherwise how often the
    # polling fallback looks at the folder, and how often a notified watch checks that the
    # folder is still the one it watches (engine/watch.py).
    contexts_poll_s: float = DEFAULT_CONTEXTS_POLL_S
    contexts_watch: WatchMode = WatchMode.AUTO
    # A client must send a whole request (head and body) within this time from its first byte
    # (or from connecting), or its connection is closed: slow or silent clients hold no
    # connection for long (server.py). Idle keep-alive connections close after the other.
    request_read_timeout_s: float = DEFAULT_REQUEST_READ_TIMEOUT_S
    keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S
    # Access control (auth.py): the token every protected endpoint requires (None: off; never
    # in a repr, so never in a log line), and the open endpoints closed to anonymous clients.
    auth_token: str | None = dataclasses.field(default=None, repr=False)
    auth_protect: frozenset[str] = frozenset()
    # Notifications (zeroprobe/notify): the notifiers file (None: none sent), the folder of the
    # outbox database, and the base URL people reach the status page at (links in messages).
    notifiers: str | None = None
    data_dir: str = DEFAULT_DATA_DIR
    external_url: str | None = None
    # Shards and replicas (topology.py); the default is one process, as without a cluster.
    topology: Topology = dataclasses.field(default_factory=Topology)

    @property
    def page_url(self) -> str:
        """The base URL of the status page: ZEROPROBE_EXTERNAL_URL, else http://host:port."""
        if self.external_url:
            return self.external_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

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
        watch = environ.get("ZEROPROBE_CONTEXTS_WATCH", "").strip().lower()
        if watch:
            try:
                values["contexts_watch"] = WatchMode(watch)
            except ValueError:
                raise SettingsError(
                    "ZEROPROBE_CONTEXTS_WATCH: expected auto, notify or poll, "
                    f"got {environ['ZEROPROBE_CONTEXTS_WATCH']!r}"
                ) from None
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
        for name, field in (
            ("ZEROPROBE_NOTIFIERS", "notifiers"),
            ("ZEROPROBE_DATA_DIR", "data_dir"),
            ("ZEROPROBE_EXTERNAL_URL", "external_url"),
        ):
            if environ.get(name, "").strip():
                values[field] = environ[name].strip()
        external = values.get("external_url")
        if isinstance(external, str) and not external.startswith(("http://", "https://")):
            raise SettingsError(
                f"ZEROPROBE_EXTERNAL_URL: expected an http(s) URL, got {external!r}"
            )
        try:
            values["topology"] = Topology.from_environ(environ)
        except TopologyError as exc:
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
