"""Serving: run the aiohttp app until SIGTERM or SIGINT, then stop within a few seconds.

While serving, SIGHUP and changes of the contexts folder reload the specs (reload.py).

Hostile clients are bounded here. aiohttp's parser limits the request line, each header and
the number of headers (a longer or larger one gets 400, see the constants below) and the app
limits the body (app.MAX_BODY_BYTES, 413). aiohttp has no timeout for *reading* a request:
its old slow_request_timeout is gone, and its keep-alive timer only runs from connecting or
from the last answer, is not reset by arriving bytes, and defaults to an hour. So a client
sending its head a byte at a time (slowloris), or a body slower than that, or nothing at all,
would hold a connection (a file descriptor) for an hour. `DeadlineRequestHandler` adds the
missing bound: a request must be read whole within `request_read_timeout_s` of its first
byte (or of connecting), or the connection is closed; idle keep-alive connections close after
`keepalive_timeout_s`. It costs one timer per connection (no polling), and other clients are
never affected. Requests aiohttp cannot parse get a JSON 400 and a debug line (aiohttp itself
logs each with a traceback, which lets any client flood the logs). The handler subclass uses
a few of aiohttp's private attributes (parsed-message queue and count, handler task, the
runner's server factory); tests/test_http_input.py fails if an aiohttp upgrade changes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.engine.reload import RELOADER, reload_triggers
from zeroprobe.notify.notifier import Notifier
from zeroprobe.web.app import create_app

log = logging.getLogger(__name__)

#: Longest request line (method, URL, version): a longer one gets 400 from aiohttp's parser.
MAX_REQUEST_LINE_BYTES = 8190
#: Longest header line, name and value.
MAX_HEADER_BYTES = 8190
#: Most headers in one request.
MAX_HEADERS = 100
#: Soft limit of open file descriptors `serve` asks for (each client connection holds one),
#: capped by the hard limit.
WANTED_OPEN_FILES = 65536
#: How long a thread holds the GIL before the event loop may take it back, while serving.
METRICS_THREAD_SWITCH_INTERVAL_S = 0.001

_TIMEOUT_BODY = b'{"error": "request timeout", "status": 408}'
_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class DeadlineRequestHandler(RequestHandler):
    """aiohttp's connection protocol with a deadline for reading each request whole.

    A read starts when a connection opens, and at the first byte after the previous request
    was read whole; it ends when a request head has been parsed and its body has arrived.
    When a read is still going `read_timeout_s` after it started, the connection is closed
    (with a 408 when no head was parsed yet). A handler that merely takes long is never cut.
    Cheap on the hot path: a keep-alive client's requests only note a start time; one timer
    per connection is set lazily and moved to the newest read's deadline when it fires early.
    """

    __slots__ = ("_read_payload", "_read_since", "_read_timeout_s", "_read_timer")

    def __init__(self, manager: web.Server, *, read_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._read_timeout_s = read_timeout_s
        self._read_timer: asyncio.TimerHandle | None = None
        self._read_since: float | None = None  # loop time the current read started
        self._read_payload: Any = None  # body of the newest request head parsed in this read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_read()

    def data_received(self, data: bytes) -> None:
        if data and (
            self._read_since is None
            or (self._read_payload is not None and self._read_payload.is_eof())
        ):
            self._start_read()  # the first bytes after a request was read whole
        parsed_before = self._request_count
        super().data_received(data)
        if self._request_count != parsed_before and self._messages:
            # The newest head's body: when it is complete, so is everything before it.
            self._read_payload = self._messages[-1][1]
            if self._read_payload.is_eof():
                self._read_since = self._read_payload = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        super().connection_lost(exc)

    def _start_read(self) -> None:
        self._read_since = self._loop.time()
        self._read_payload = None
        if self._read_timer is None:
            deadline = self._read_since + self._read_timeout_s
            self._read_timer = self._loop.call_at(deadline, self._read_overdue)

    def _read_overdue(self) -> None:
        self._read_timer = None
        if self._read_since is None:
            return  # nothing being read
        payload = self._read_payload
        if payload is not None and payload.is_eof():
            self._read_since = self._read_payload = None  # read whole since the last look
            return
        deadline = self._read_since + self._read_timeout_s
        if self._loop.time() < deadline:  # a later read: wait for its own deadline
            self._read_timer = self._loop.call_at(deadline, self._read_overdue)
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        log.debug(
            "closing %s: request not read within %s s",
            transport.get_extra_info("peername"),
            self._read_timeout_s,
        )
        if payload is None:
            transport.write(_TIMEOUT_ANSWER)  # no head parsed, no answer begun: say why
        elif self._task_handler is not None:
            # A handler may wait for the rest of the body: cancel it (quietly, as when a
            # client goes away) rather than fail its read with a logged connection error.
            self._task_handler.cancel()
        self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp could not parse (400: too long, too many headers, not HTTP): a
        JSON answer and one debug line, not aiohttp's logged traceback; the client's bytes
        are not echoed. Server errors keep aiohttp's handling (a logged traceback)."""
        if status >= 500 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        reason = type(exc).__name__ if exc is not None else "malformed request"
        log.debug("bad request from %s: %s", request.remote, reason)
        response = web.json_response(
            {"error": f"bad request: {reason}", "status": status}, status=status
        )
        response.force_close()
        return response


class DeadlineServer(web.Server):
    """aiohttp's low-level server making `DeadlineRequestHandler` connections."""

    def __init__(self, *args: Any, read_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout_s = read_timeout_s

    def __call__(self) -> RequestHandler:
        return DeadlineRequestHandler(
            self, loop=self._loop, read_timeout_s=self.read_timeout_s, **self._kwargs
        )


class ServiceRunner(web.AppRunner):
    """An AppRunner serving through `DeadlineServer`, with the parser and keep-alive limits."""

    def __init__(self, app: web.Application, settings: Settings, **kwargs: Any) -> None:
        super().__init__(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=settings.shutdown_timeout_s,
            keepalive_timeout=settings.keepalive_timeout_s,
            max_line_size=MAX_REQUEST_LINE_BYTES,
            max_field_size=MAX_HEADER_BYTES,
            max_headers=MAX_HEADERS,
            **kwargs,
        )
        self._read_timeout_s = settings.request_read_timeout_s

    async def _make_server(self) -> web.Server:
        # AppRunner starts the app and builds a plain Server; the same, making our handlers.
        plain = await super()._make_server()
        return DeadlineServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            read_timeout_s=self._read_timeout_s,
            **plain._kwargs,
        )


def raise_open_files_limit(wanted: int = WANTED_OPEN_FILES) -> int:
    """Raise the soft limit of open files towards `wanted` (never past the hard limit), so
    many slow clients exhaust timeouts rather than descriptors; returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %d: %s", soft, exc)
            return soft
        return target
    return soft


@contextlib.asynccontextmanager
async def listening(
    engine: Engine, notifier: Notifier | None = None
) -> AsyncIterator[tuple[web.Application, str]]:
    """Serve `create_app(engine)` (the engine, and the notifier if any, start with it) on the
    settings' host and port with the limits above, until the block exits; yields the app and
    its URL."""
    settings = engine.settings
    app = create_app(engine, notifier=notifier)
    runner = ServiceRunner(app, settings)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        yield app, _url(runner, settings.host, settings.port)
    finally:
        await runner.cleanup()


async def serve(
    engine: Engine,
    on_started: Callable[[str], None] | None = None,
    notifier: Notifier | None = None,
) -> None:
    """Serve `engine` (and `notifier`) on its settings' host and port until a stop signal."""
    settings = engine.settings
    open_files = raise_open_files_limit()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with listening(engine, notifier) as (app, url):
            # The specs, clients and modules loaded so far live as long as the process: out of
            # the collector's sight, a full collection no longer walks them (it stopped the
            # loop for up to 59 ms with 1,000 specs; docs/reliability.md).
            gc.freeze()
            # A /metrics scrape joins and compresses in a thread (web/scrape.py), and a PUT
            # arriving meanwhile waits for GIL hand-overs. Kept after the scrape became
            # cheap: at 10,000 probes, PUT p99 during back-to-back Prometheus scrapes was
            # lower with 1 ms than with the default 5 ms, and far lower than building the
            # body on the event loop (`python -m bench.metrics_scrape`, docs/benchmarks.md).
            sys.setswitchinterval(METRICS_THREAD_SWITCH_INTERVAL_S)
            log.info(
                "serving on %s (request read timeout %s s, keep-alive %s s, open files %d)",
                url,
                settings.request_read_timeout_s,
                settings.keepalive_timeout_s,
                open_files,
            )
            if on_started is not None:
                on_started(url)
            async with reload_triggers(
                app[RELOADER], settings.contexts_poll_s, settings.contexts_watch
            ):
                await stop.wait()
            log.info("stopping: cancelling probe runs and closing connections")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")


def _url(runner: web.AppRunner, host: str, port: int) -> str:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            port = int(address[1])
            break
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
