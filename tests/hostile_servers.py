"""Hostile and broken targets on 127.0.0.1 for the hostile-target and secrets tests.

Each server runs its own event loop in a thread, so a target that hangs or floods cannot
stall the zeroprobe under test by sharing its loop, and a test can watch the service answer
while the target misbehaves. A server speaks raw TCP (optionally TLS): it reads what the
client sends and then does one hostile thing (never answers, answers garbage, cuts a reply
short, floods). `fake_dns` makes host names fail to resolve without any real DNS traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest

LOCALHOST = "127.0.0.1"
#: How a handler acts on one accepted connection.
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class HostileServer:
    """A TCP server on 127.0.0.1 running `behaviour` on every connection, in its own thread."""

    def __init__(self, behaviour: Behaviour, *, tls: ssl.SSLContext | None = None) -> None:
        self._behaviour = behaviour
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: dict[asyncio.StreamWriter, asyncio.Task[Any]] = {}
        self.port = 0
        #: Connections accepted.
        self.connections = 0

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=10)
        return self

    async def _start(self) -> None:
        tls: dict[str, Any] = {"ssl": self._tls, "ssl_handshake_timeout": 5} if self._tls else {}
        self._server = await asyncio.start_server(self._serve, LOCALHOST, 0, **tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._open[writer] = task
        try:
            await self._behaviour(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # the client gave up: that is what a hostile server provokes
        finally:
            self._open.pop(writer, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def stop(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            # Cutting the connections ends the handlers that wait for the client forever.
            handlers = list(self._open.values())
            for writer in list(self._open):
                writer.transport.abort()
            if handlers:
                await asyncio.wait(handlers, timeout=5)
            # What is left (a TLS handshake a client abandoned) ends with the loop.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Behaviours ---------------------------------------------------------------------------------


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """An HTTP request's head (up to the blank line), or the first bytes of any other protocol."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return b""


def never_answers() -> Behaviour:
    """Accept, read everything, answer nothing, keep the connection open."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass

    return behaviour


def answers_http(
    body: bytes,
    *,
    status: str = "200 OK",
    content_type: str = "application/json",
    content_length: int | None = None,
    close_after_bytes: int | None = None,
    headers: dict[str, str] | None = None,
) -> Behaviour:
    """Answer each request with `body`; `content_length` may lie, and `close_after_bytes`
    closes the connection after that many bytes of the reply (head included)."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        length = len(body) if content_length is None else content_length
        head = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}", f"Content-Length: {length}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        reply = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        if close_after_bytes is not None:
            reply = reply[:close_after_bytes]
        writer.write(reply)
        await writer.drain()
        if close_after_bytes is None and content_length is not None and content_length > len(body):
            # A body shorter than announced: stay silent, as a stuck proxy would.
            while await reader.read(65536):
                pass

    return behaviour


def answers_raw(data: bytes, *, every_message: bool = False) -> Behaviour:
    """Read the first message, answer `data` (any bytes: not HTTP, not BSON) and close; or,
    with `every_message`, answer `data` to every message and keep the connection open."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            writer.write(data)
            await writer.drain()
            if not every_message:
                return

    return behaviour


def floods_http(size_bytes: int, *, chunked: bool, sent: list[int] | None = None) -> Behaviour:
    """Answer 200 with a `size_bytes` JSON-looking body, announced by Content-Length or sent
    chunked (so only a capped read, not the header, can refuse it). Counts what was sent."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        head += (
            "Transfer-Encoding: chunked\r\n\r\n"
            if chunked
            else f"Content-Length: {size_bytes}\r\n\r\n"
        )
        writer.write(head.encode())
        piece = b'["' + b"x" * (64 * 1024 - 4) + b'",'
        written = 0
        while written < size_bytes:
            data = piece[: size_bytes - written]
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
            await writer.drain()
            written += len(data)
            if sent is not None:
                sent[0] += len(data)
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    return behaviour


def gzip_bomb(size_bytes: int) -> bytes:
    """A gzip body of `size_bytes` zeros: a few KiB on the wire, `size_bytes` once inflated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1024 * 1024)
    parts = [compressor.compress(block) for _ in range(size_bytes // len(block))]
    return b"".join(parts) + compressor.flush()


def answers_huge_header(size_bytes: int) -> Behaviour:
    """Answer a status line, then one header line of `size_bytes`."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * size_bytes + b"\r\n\r\n[]")
        await writer.drain()

    return behaviour


# TLS ----------------------------------------------------------------------------------------


def self_signed_tls(workdir: Path, common_name: str = LOCALHOST) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate made now with the openssl CLI
    (nothing is shipped, nothing trusts it: a verifying client must refuse it)."""
    key, cert = workdir / "key.pem", workdir / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={common_name}", "-addext", f"subjectAltName=IP:{common_name}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


# DNS ----------------------------------------------------------------------------------------

#: A name in the reserved `.invalid` top-level domain (RFC 6761): it can never resolve.
UNRESOLVABLE_HOST = "db.zeroprobe-test.invalid"


@contextlib.contextmanager
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make every name but the loopback fail to resolve, in-process.

    The tests must send no DNS query off the machine, and a resolver's answer for a made-up
    name depends on the network it runs on; so `socket.getaddrinfo` (which aiohttp's threaded
    resolver and PyMongo's asyncio client both call through the loop's `getaddrinfo`) raises
    the `gaierror` a real resolver gives for an unknown name. Yields the names asked for.
    """
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in (LOCALHOST, "localhost", "::1") or name.replace(".", "").isdigit():
            return real(host, *args, **kwargs)
        asked.append(name)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield asked
