"""The one HTTP client of the HTTP-backed probes (Prometheus, Alertmanager, CI, endpoints).

One `aiohttp.ClientSession` for every probe, opened on first use and closed when the engine
stops. A connection label resolves to a base URL in ZEROPROBE_CONNECTION_<LABEL>: its
`user:password@` becomes basic auth and is removed from the URL before any request, so the
credentials never appear in a line, a log record or a metric. Every library error becomes a
ProbeError with a plain-English line; replies are read up to a cap, so a huge reply cannot
exhaust memory. `request` times a request and reads the server's certificate, for kinds
that check an endpoint itself rather than read an API.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import re
import socket
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp.connector import Connection
from yarl import URL

from probes.errors import (
    ProbeConfigError,
    ProbeConnectionError,
    ProbeError,
    ProbeReplyError,
    ProbeTimeoutError,
)
from probes.redact import Redactor
from schemas.context_spec import connection_env_var
from schemas.durations import format_duration

#: Replies larger than this are refused: a runaway query (or a hostile server) must not
#: exhaust memory. A probe's answer is a few series, alerts or runs: far below this.
MAX_REPLY_BYTES = 4 * 1024 * 1024
#: How much of a library's error text a line may quote.
DETAIL_CHARS = 160
#: How much of a non-JSON reply (an HTML error page of a proxy) a line may quote.
SNIPPET_CHARS = 200
#: The User-Agent when the engine does not name its version.
USER_AGENT = "zeroprobe"
#: Connections open at once to one target (host and port); runs beyond it wait for one.
MAX_CONNECTIONS_PER_TARGET = 16

# The share of the probe's timeout given to one request, so that the request's own error
# ("did not answer within 8s") arrives before the runner's timeout cuts the run short.
REQUEST_TIMEOUT_SHARE = 0.8
REQUEST_MARGIN_S = 0.25


def request_timeout_s(timeout_s: float) -> float:
    """The part of a probe's timeout given to its HTTP request."""
    return max(
        timeout_s * 0.5, min(timeout_s * REQUEST_TIMEOUT_SHARE, timeout_s - REQUEST_MARGIN_S)
    )


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """Where a label points: the base URL without credentials, and how to authenticate."""

    label: str
    base_url: URL
    #: Authorization (basic from the URL's user:password, or bearer), never logged.
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """`host:port[/path]` as lines show it: never credentials, and never the whole value of
        the variable, which the redactor treats as a secret and would blank out."""
        path = self.base_url.path.rstrip("/")
        return f"{self.base_url.host_port_subcomponent}{path}"

    def url(self, path: str) -> URL:
        """`path` below the base URL, keeping a path prefix (http://host/prometheus)."""
        return self.base_url.with_path(self.base_url.path.rstrip("/") + path)


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A reply read in full: status, and the body parsed as JSON when it is JSON."""

    status: int
    reason: str
    data: Any = None
    is_json: bool = False
    snippet: str = ""  # the start of a body that is not JSON, on one line

    @property
    def status_text(self) -> str:
        """`HTTP 503 Service Unavailable`."""
        return f"HTTP {self.status} {self.reason}".rstrip()


@dataclass(frozen=True, slots=True)
class RawReply:
    """A reply as bytes, with its headers (lower-cased names): for kinds that read headers."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def status_text(self) -> str:
        """`HTTP 503 Service Unavailable`."""
        return f"HTTP {self.status} {self.reason}".rstrip()


@dataclass(frozen=True, slots=True)
class MeasuredReply:
    """A reply as `request` measured it: what came back, how long it took, and the
    certificate the server presented."""

    status: int
    reason: str
    #: Header names lower-cased; a repeated header keeps its last value.
    headers: Mapping[str, str]
    #: The body, or its first `max_reply_bytes` when `truncated`.
    body: bytes
    #: From sending the request (connecting included) until the body was read.
    elapsed_s: float
    #: The body was longer than the cap: only its start was read, the rest never fetched.
    truncated: bool = False
    #: The server's certificate (DER) over HTTPS, verified or not; None over plain HTTP.
    peer_certificate: bytes | None = None

    @property
    def status_text(self) -> str:
        """`HTTP 503 Service Unavailable`."""
        return f"HTTP {self.status} {self.reason}".rstrip()


class _CertificateResponse(aiohttp.ClientResponse):
    """A response that keeps the certificate its connection's server presented.

    aiohttp releases a connection as soon as a reply is read in full, often before the caller
    sees the reply (a short body arrives with the headers), and its transport with it: the
    start of the response is the one moment the connection is sure to be there.
    """

    peer_certificate: bytes | None = None

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if isinstance(ssl_object, ssl.SSLObject):
            # Also when not verified (tls_verify false): the server always sends it.
            self.peer_certificate = ssl_object.getpeercert(binary_form=True)
        return await super().start(connection)


class HttpClient:
    """The shared session, and the targets of connection labels resolved from the environment."""

    def __init__(
        self,
        environ: Mapping[str, str],
        redact: Redactor,
        *,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        user_agent: str = USER_AGENT,
    ) -> None:
        self._environ = environ
        self._user_agent = user_agent
        self._redact = redact
        self._max_reply_bytes = max_reply_bytes
        self._session: aiohttp.ClientSession | None = None
        # tls_ca_file path -> (what the file was when read, its context): a context is built
        # once per version of the bundle, not at every request.
        self._ca_contexts: dict[str, tuple[tuple[int, int, int], ssl.SSLContext]] = {}

    def target(self, label: str, bearer_token_env: str | None = None) -> HttpTarget:
        """The target of `label`; ProbeConfigError when its variable is unset or unusable."""
        variable = connection_env_var(label)
        raw = self._environ.get(variable, "").strip()
        if not raw:
            raise ProbeConfigError(f"connection {label!r}: {variable} is not set")
        self._redact.add(raw)
        try:
            url = URL(raw)
            host = url.host
        except (ValueError, TypeError):
            raise ProbeConfigError(
                f"connection {label!r}: {variable} is not a usable URL"
            ) from None
        if url.scheme not in ("http", "https") or not host:
            raise ProbeConfigError(
                f"connection {label!r}: {variable} must be an http:// or https:// URL with a "
                "host, like http://<host>:9090"
            )
        if url.query_string or url.fragment:
            raise ProbeConfigError(
                f"connection {label!r}: {variable} must be a base URL without '?' or '#'"
            )
        headers: dict[str, str] = {}
        if url.user is not None or url.password is not None:
            for secret in (url.password, url.raw_password):
                if secret:
                    self._redact.add(secret)
            userinfo = f"{url.user or ''}:{url.password or ''}".encode()
            encoded = base64.b64encode(userinfo).decode("ascii")
            self._redact.add(encoded)
            headers["Authorization"] = f"Basic {encoded}"
        if bearer_token_env:
            token = self._environ.get(bearer_token_env, "").strip()
            if not token:
                raise ProbeConfigError(
                    f"bearer_token_env: {bearer_token_env} is not set (it should hold the "
                    f"token for connection {label!r})"
                )
            if headers:
                raise ProbeConfigError(
                    f"connection {label!r}: {variable} has user:password and the spec names "
                    "bearer_token_env: use one of them"
                )
            self._redact.add(token)
            headers["Authorization"] = f"Bearer {token}"
        base = url.with_user(None).with_password(None)
        return HttpTarget(label=label, base_url=base, headers=headers)

    def environ_value(self, name: str) -> str:
        """The stripped value of environment variable `name`; empty when unset."""
        return self._environ.get(name, "").strip()

    def session(self) -> aiohttp.ClientSession:
        """The shared session, opened on first use (inside the running event loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # aiohttp's default pool is 100 connections for all hosts together: 100 runs
                # waiting on one hung target would starve every probe of every other target.
                # A bound per target keeps them apart, and also bounds how many runs fail in
                # the same loop turn when a target drops its connections.
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=MAX_CONNECTIONS_PER_TARGET),
                headers={"User-Agent": self._user_agent},
                # Credentials travel only in the headers target() builds, never in the URL.
                trust_env=False,
                response_class=_CertificateResponse,
            )
        return self._session

    async def close(self) -> None:
        """Close the shared session, if one was opened."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def request_json(
        self,
        target: HttpTarget,
        method: str,
        path: str,
        *,
        service: str,
        timeout_s: float,
        params: Sequence[tuple[str, str]] = (),
        form: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """Send one request and read the whole reply, parsing it as JSON when it is JSON.

        Any status is returned: the probe knows what each one means for its service. Whatever
        keeps a reply from arriving in full is raised as a ProbeError naming `service`.
        """
        url = target.url(path)
        where = f"{service} at {target.display}"
        headers = dict(target.headers)
        body = None
        if form is not None:
            # The bytes aiohttp's FormData sends for plain fields, encoded here: FormData
            # builds a multipart writer for every request first, two thirds of the cost of
            # building the request (paid by every run, and by each of 1,000 failing at once).
            body = urlencode(list(form.items()), doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        with self._mapped_errors(where, timeout_s):
            async with self.session().request(
                method,
                url,
                params=list(params),
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as response:
                body = await self._read_capped(response, service)
                return _reply(response, body)

    @contextlib.contextmanager
    def _mapped_errors(self, where: str, timeout_s: float) -> Iterator[None]:
        """Whatever keeps a reply from arriving in full, as a ProbeError naming `where`."""
        try:
            yield
        except ProbeError:
            raise
        except TimeoutError:
            # Tenths at most: a deadline's remainder (1.59995s) is not for people.
            shown_s = max(0.1, round(timeout_s, 1))
            raise ProbeTimeoutError(
                f"{where} did not answer within {format_duration(shown_s)}"
            ) from None
        except aiohttp.ClientError as exc:
            raise self._map_client_error(exc, where) from None
        except (ssl.SSLError, ConnectionError) as exc:
            # Raised by the transport outside aiohttp's own exceptions (a TLS alert mid-read).
            raise ProbeConnectionError(
                f"connection to {where} failed: {self._detail(exc)}"
            ) from None

    async def fetch(
        self,
        url: URL,
        *,
        service: str,
        where: str,
        timeout_s: float,
        headers: Mapping[str, str],
        tail_bytes: int | None = None,
    ) -> RawReply:
        """GET an absolute `url` with exactly `headers`; no redirect is followed.

        The body is read up to the cap, or, with `tail_bytes`, streamed to its end keeping
        only its last `tail_bytes` (a job log may be far larger than we want in memory).
        """
        with self._mapped_errors(where, timeout_s):
            async with self.session().get(
                url,
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as response:
                if tail_bytes is None:
                    body = await self._read_capped(response, service)
                else:
                    kept = bytearray()
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        kept += chunk
                        if len(kept) > tail_bytes:
                            del kept[: len(kept) - tail_bytes]
                    body = bytes(kept)
                return RawReply(
                    status=response.status,
                    reason=response.reason or "",
                    headers={k.lower(): v for k, v in response.headers.items()},
                    body=body,
                )

    async def request(
        self,
        target: HttpTarget,
        method: str,
        path: str,
        *,
        where: str,
        timeout_s: float,
        params: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        tls_verify: bool = True,
        tls_ca_file: str | None = None,
    ) -> MeasuredReply:
        """Send one request on a connection of its own and time it until the body is read.

        Any status is returned and no redirect is followed. A body longer than the cap is read
        up to it (`truncated`), not refused. Over HTTPS the reply carries the certificate the
        server presented: verified against the system's CAs, or only those of `tls_ca_file`
        (a PEM bundle), or, with `tls_verify` false, not verified at all. Whatever keeps a
        reply from arriving is raised as a ProbeError naming `where`.
        """
        url = target.url(path)
        tls: ssl.SSLContext | bool = tls_verify
        if url.scheme == "https" and tls_verify and tls_ca_file is not None:
            tls = self._ca_file_context(tls_ca_file)
        # A fresh connection every time: its time and its certificate are what a new visitor
        # gets, not what a connection opened minutes ago still carries.
        sent = {**(headers or {}), "Connection": "close", **target.headers}
        with self._mapped_errors(where, timeout_s):
            started = time.perf_counter()
            async with self.session().request(
                method,
                url,
                params=list(params),
                headers=sent,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
                ssl=tls,
            ) as response:
                body, truncated = await self._read_up_to_cap(response)
                elapsed_s = time.perf_counter() - started
                certificate = (
                    response.peer_certificate
                    if isinstance(response, _CertificateResponse)
                    else None
                )
                return MeasuredReply(
                    status=response.status,
                    reason=response.reason or "",
                    headers={k.lower(): v for k, v in response.headers.items()},
                    body=body,
                    elapsed_s=elapsed_s,
                    truncated=truncated,
                    peer_certificate=certificate,
                )

    async def _read_up_to_cap(self, response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        """The body up to the cap, and whether there was more (left unread)."""
        limit = self._max_reply_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            if size + len(chunk) > limit:
                chunks.append(chunk[: limit - size])
                return b"".join(chunks), True
            size += len(chunk)
            chunks.append(chunk)
        return b"".join(chunks), False

    async def _read_capped(self, response: aiohttp.ClientResponse, service: str) -> bytes:
        limit = self._max_reply_bytes
        too_large = ProbeReplyError(
            f"reply of {service} larger than {_size_text(limit)}: not read "
            "(narrow the query or the matchers)"
        )
        if response.content_length is not None and response.content_length > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _detail(self, exc: BaseException) -> str:
        """A library's error text on one short line, credentials removed."""
        text = " ".join((str(exc) or type(exc).__name__).split())
        if len(text) > DETAIL_CHARS:
            text = text[: DETAIL_CHARS - 1] + "…"
        return self._redact(text)

    def _ca_file_context(self, ca_file: str) -> ssl.SSLContext:
        """A verifying context trusting only the CAs of `ca_file`; ProbeConfigError when
        unusable.

        The file is looked at (one stat) at every request and read again only when it
        changed: a renewed bundle counts at once, and a missing one is a RED line of the
        probe rather than an error at load time.
        """
        try:
            stat = os.stat(ca_file)
            version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            cached = self._ca_contexts.get(ca_file)
            if cached is not None and cached[0] == version:
                return cached[1]
            context = ssl.create_default_context(cafile=ca_file)
        except FileNotFoundError:
            raise ProbeConfigError(f"tls_ca_file {ca_file}: no such file") from None
        except IsADirectoryError:
            raise ProbeConfigError(f"tls_ca_file {ca_file}: a directory, not a PEM file") from None
        except (ssl.SSLError, ValueError):  # before OSError: an SSLError is one
            raise ProbeConfigError(
                f"tls_ca_file {ca_file}: no PEM certificate in it (expected a CA bundle)"
            ) from None
        except OSError as exc:
            raise ProbeConfigError(
                f"tls_ca_file {ca_file}: cannot be read ({exc.strerror or type(exc).__name__})"
            ) from None
        self._ca_contexts[ca_file] = (version, context)
        return context

    def _map_client_error(self, exc: aiohttp.ClientError, where: str) -> ProbeError:
        detail = self._detail(exc)
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return ProbeConnectionError(
                f"TLS handshake with {where} failed: {tls_reason(exc.certificate_error)}"
            )
        if isinstance(exc, aiohttp.ClientSSLError):
            return ProbeConnectionError(
                f"TLS handshake with {where} failed: {tls_reason(exc.os_error)}"
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            # aiohttp 3.11+ raises ClientConnectorDNSError; every version carries the gaierror.
            if isinstance(exc.os_error, socket.gaierror):
                return ProbeConnectionError(f"cannot connect to {where}: host name not resolvable")
            if exc.os_error.errno == errno.ECONNREFUSED:
                return ProbeConnectionError(f"cannot connect to {where}: connection refused")
            reason = exc.os_error.strerror or detail
            return ProbeConnectionError(f"cannot connect to {where}: {reason}")
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return ProbeConnectionError(f"{where} closed the connection without a reply")
        if isinstance(exc, aiohttp.ClientPayloadError):
            return ProbeReplyError(f"reply of {where} was cut off{_cut_off_reason(str(exc))}")
        if isinstance(exc, aiohttp.InvalidURL):
            return ProbeConfigError(f"invalid URL for {where}")
        if isinstance(exc, aiohttp.ClientResponseError) and exc.status == 400:
            # aiohttp's parser rejected what came back: the server does not speak HTTP.
            message = exc.message or ""
            if "got more than" in message.lower():
                return ProbeReplyError(f"reply of {where} has a header larger than 8 KiB")
            what = message.split(":", 1)[0].strip().lower() or "unreadable"
            return ProbeReplyError(f"reply of {where} is not HTTP ({self._redact(what[:80])})")
        if isinstance(exc, aiohttp.ClientOSError):
            reason = exc.strerror or detail
            return ProbeConnectionError(f"connection to {where} failed: {reason}")
        return ProbeConnectionError(f"request to {where} failed: {detail}")


def tls_reason(error: BaseException) -> str:
    """`certificate verify failed: self-signed certificate`, `wrong version number (...)`."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {error.verify_message or error.reason or 'unknown'}"
    if isinstance(error, ssl.SSLError):
        reason = str(error.reason or "").lower().replace("_", " ")
        if reason == "wrong version number":
            return "wrong version number (the server does not seem to speak TLS)"
        return reason or "unknown TLS error"
    return " ".join(str(error).split())[:DETAIL_CHARS] or type(error).__name__


_TAGS = re.compile(r"<[^>]{0,200}>")
_RECEIVED = re.compile(r"received (\d+) of (\d+) bytes")


def _cut_off_reason(text: str) -> str:
    """What a payload error says, in words: `(received 78 of 630 bytes)`."""
    received = _RECEIVED.search(text)
    if received:
        return f" (received {received[1]} of {received[2]} bytes)"
    if "TransferEncodingError" in text:
        return " (the chunked body ended early)"
    return ""


def _size_text(size_bytes: int) -> str:
    """`4 MiB`, `512 KiB`, `100 bytes`."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size_bytes >= scale and size_bytes % scale == 0:
            return f"{size_bytes // scale} {unit}"
    return f"{size_bytes} bytes"


def _reply(response: aiohttp.ClientResponse, body: bytes) -> HttpReply:
    status, reason = response.status, response.reason or ""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: not for us
        text = body.decode("utf-8", errors="replace")
        # An HTML error page of a proxy: its words, without its markup.
        snippet = " ".join(_TAGS.sub(" ", text).split())[:SNIPPET_CHARS]
        return HttpReply(status=status, reason=reason, snippet=snippet)
    return HttpReply(status=status, reason=reason, data=data, is_json=True)


def status_line(reply: HttpReply, service: str, path: str) -> str:
    """A plain reason for a status the service's API does not answer with by itself."""
    if reply.status in (401, 403):
        return f"{service} refused the credentials ({reply.status_text}): check the connection"
    if reply.status == 404:
        return f"no {service} API at {path} ({reply.status_text}): check the connection's base URL"
    if 300 <= reply.status < 400:
        return (
            f"{service} redirected the request ({reply.status_text}): "
            "set the connection to the final address"
        )
    snippet = f": {reply.snippet[:120]}" if reply.snippet else ""
    return f"{service} answered {reply.status_text}{snippet}"
