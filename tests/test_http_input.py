"""Hostile HTTP input against a real server over real sockets: size limits, slow and silent
clients, unknown methods and odd paths. Never a 500, never a hang, never a traceback logged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest

from tests.served import SERVED_IDS, Served, served
from zeroprobe.config.settings import Settings, SettingsError
from zeroprobe.web.server import MAX_HEADERS, MAX_REQUEST_LINE_BYTES

KNOWN_ID = SERVED_IDS[0]
#: Short timeouts so the tests see them pass; production defaults are 10 s and 75 s.
READ_TIMEOUT_S = 1.0
KEEPALIVE_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(
        tmp_path_factory.mktemp("contexts"),
        request_read_timeout_s=READ_TIMEOUT_S,
        keepalive_timeout_s=KEEPALIVE_TIMEOUT_S,
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def no_errors_logged(server: Served) -> Iterator[None]:
    """Whatever a test sends, the server logs no warning, error or traceback."""
    server.logs.records.clear()
    yield
    assert server.logs.lines() == []


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.body)
        return loaded


async def read_answer(reader: asyncio.StreamReader) -> RawAnswer:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length)
    return RawAnswer(int(status_line.split()[1]), headers, body)


async def raw(server: Served, request: bytes, timeout_s: float = 10) -> RawAnswer:
    """Send `request` bytes as they are (no client normalising the URL) and read one answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(read_answer(reader), timeout_s)
    finally:
        await close(writer)


def get(target: str, method: str = "GET", headers: str = "") -> bytes:
    return (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
    ).encode("utf-8", "surrogateescape")


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):  # the server may have closed first
        await writer.wait_closed()


async def closed_within(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    """Everything the server sends until it closes; fails if it has not closed in time."""
    return await asyncio.wait_for(reader.read(), timeout_s)


# --- size limits ---------------------------------------------------------------------------


async def test_very_long_url_gets_a_4xx(server: Served) -> None:
    answer = await raw(server, get("/" + "a" * (MAX_REQUEST_LINE_BYTES + 100)))

    assert 400 <= answer.status < 500


async def test_longest_allowed_id_is_an_unknown_id(server: Served) -> None:
    answer = await raw(server, get("/" + "a" * 8000))

    assert answer.status == 404
    assert answer.json()["status"] == 404


async def test_huge_header_gets_a_4xx(server: Served) -> None:
    answer = await raw(server, get(f"/{KNOWN_ID}", headers=f"X-Big: {'b' * 20_000}\r\n"))

    assert 400 <= answer.status < 500


async def test_too_many_headers_get_a_4xx(server: Served) -> None:
    many = "".join(f"X-H{i}: {i}\r\n" for i in range(MAX_HEADERS + 50))

    answer = await raw(server, get(f"/{KNOWN_ID}", headers=many))

    assert 400 <= answer.status < 500


async def test_headers_up_to_the_limit_are_served(server: Served) -> None:
    some = "".join(f"X-H{i}: {i}\r\n" for i in range(MAX_HEADERS - 10))

    answer = await raw(server, get(f"/{KNOWN_ID}", method="PUT", headers=some))

    assert answer.status == 200
    assert list(answer.json()) == [KNOWN_ID]  # a Zero Problem document: {service_id: ...}


async def test_body_over_64_kib_gets_413_json(
    server: Served, session: aiohttp.ClientSession
) -> None:
    async with session.put(f"{server.url}/{KNOWN_ID}", data=b"x" * (65 * 1024)) as response:
        assert response.status == 413
        body = await response.json()
    assert body["status"] == 413


async def test_chunked_body_over_64_kib_gets_413_json(
    server: Served, session: aiohttp.ClientSession
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 8192

    async with session.put(f"{server.url}/{KNOWN_ID}", data=chunks()) as response:
        assert response.status == 413


async def test_small_body_is_read_and_ignored(
    server: Served, session: aiohttp.ClientSession
) -> None:
    async with session.put(f"{server.url}/{KNOWN_ID}", data=b'{"any": "thing"}') as response:
        assert response.status == 200
        assert list(await response.json()) == [KNOWN_ID]


def bodied_put(body: bytes, *, chunked: bool = False, close_after: bool = False) -> bytes:
    """A raw PUT of KNOWN_ID carrying `body` as JSON, with Content-Length or chunked."""
    if chunked:
        framing = "Transfer-Encoding: chunked\r\n"
        sent = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in split(body, 4096))
        sent += b"0\r\n\r\n"
    else:
        framing, sent = f"Content-Length: {len(body)}\r\n", body
    connection = "Connection: close\r\n" if close_after else ""
    head = (
        f"PUT /{KNOWN_ID} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\n{framing}{connection}\r\n"
    )
    return head.encode() + sent


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


async def answers_on_one_connection(server: Served, *requests: bytes) -> list[RawAnswer]:
    """Send each request on one keep-alive connection, each after the previous answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    got = []
    try:
        for request in requests:
            writer.write(request)
            await writer.drain()
            got.append(await asyncio.wait_for(read_answer(reader), 10))
    finally:
        await close(writer)
    return got


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_small_bodies_get_the_document_and_the_connection_stays_usable(
    server: Served, chunked: bool
) -> None:
    """A PUT with a body received whole is answered without reading it (the fast path);
    aiohttp's parser has consumed its bytes, so the next request parses as usual."""
    plain = (await raw(server, get(f"/{KNOWN_ID}", method="PUT"))).body
    requests = [
        bodied_put(b"{}", chunked=chunked),
        get(f"/{KNOWN_ID}").replace(b"Connection: close\r\n", b""),
        bodied_put(b'{"a": "' + b"x" * 40_000 + b'"}', chunked=chunked),
        bodied_put(b"x" * (64 * 1024), chunked=chunked),  # exactly the limit
        get("/livez"),
    ]

    answers = await answers_on_one_connection(server, *requests)

    assert [a.status for a in answers] == [200] * 5
    assert [a.body for a in answers[:4]] == [plain] * 4
    assert answers[0].headers["content-type"].startswith("application/json")


async def test_pipelined_puts_with_bodies_are_all_answered(server: Served) -> None:
    plain = (await raw(server, get(f"/{KNOWN_ID}", method="PUT"))).body
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            bodied_put(b"{}")
            + bodied_put(b'{"k": 1}', chunked=True)
            + bodied_put(b"[]")
            + get("/livez")
        )
        await writer.drain()
        answers = [await asyncio.wait_for(read_answer(reader), 5) for _ in range(4)]
    finally:
        await close(writer)

    assert [a.status for a in answers] == [200, 200, 200, 200]
    assert [a.body for a in answers[:3]] == [plain] * 3


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_over_64_kib_received_whole_gets_413_json(server: Served, chunked: bool) -> None:
    """Sent in one go, so the body may have arrived whole before the handler runs."""
    answer = await raw(server, bodied_put(b"z" * (64 * 1024 + 1), chunked=chunked))

    assert answer.status == 413
    assert answer.json()["status"] == 413


async def test_small_body_arriving_late_is_waited_for(server: Served) -> None:
    """A body still on its way (within the read timeout) is read, then the document sent."""
    plain = (await raw(server, get(f"/{KNOWN_ID}", method="PUT"))).body
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    request = bodied_put(b'{"late": true}')
    try:
        writer.write(request[:-5])
        await writer.drain()
        await asyncio.sleep(READ_TIMEOUT_S / 4)
        early = asyncio.create_task(read_answer(reader))
        await asyncio.sleep(0.05)
        assert not early.done()  # no answer before the body is whole
        writer.write(request[-5:])
        await writer.drain()
        answer = await asyncio.wait_for(early, 5)
    finally:
        await close(writer)

    assert answer.status == 200
    assert answer.body == plain


# --- slow, silent and idle clients ---------------------------------------------------------


async def test_silent_client_is_disconnected_with_408(server: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = time.monotonic()
    try:
        sent = await closed_within(reader, READ_TIMEOUT_S + 5)
    finally:
        await close(writer)

    assert time.monotonic() - started >= READ_TIMEOUT_S * 0.9
    assert sent.startswith(b"HTTP/1.1 408 ")


async def test_slowloris_head_is_cut_off(server: Served) -> None:
    """A head sent a byte every 100 ms never completes: closed after the read timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = get(f"/{KNOWN_ID}", method="PUT", headers="X-Slow: " + "s" * 200 + "\r\n")
    answer = asyncio.create_task(reader.readuntil(b"\r\n\r\n"))
    started = time.monotonic()
    try:
        for byte in head[:-2]:  # never the final CRLF
            if answer.done() or time.monotonic() - started > READ_TIMEOUT_S + 5:
                break
            with contextlib.suppress(ConnectionError):
                writer.write(bytes([byte]))
                await writer.drain()
            await asyncio.sleep(0.1)
        sent = await asyncio.wait_for(answer, 5)
    finally:
        await close(writer)

    elapsed_s = time.monotonic() - started
    assert READ_TIMEOUT_S * 0.9 <= elapsed_s < READ_TIMEOUT_S + 5
    assert sent.startswith(b"HTTP/1.1 408 ")


async def test_slow_body_is_cut_off(server: Served) -> None:
    """A PUT announcing 1,000 body bytes and sending 10: closed after the read timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = time.monotonic()
    try:
        writer.write(
            f"PUT /{KNOWN_ID} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode()
            + b"0123456789"
        )
        await writer.drain()
        sent = await closed_within(reader, READ_TIMEOUT_S + 5)
    finally:
        await close(writer)

    assert time.monotonic() - started >= READ_TIMEOUT_S * 0.9
    assert b" 200 " not in sent


async def test_keep_alive_connection_outlives_the_read_timeout_until_idle(
    server: Served,
) -> None:
    """Between requests the keep-alive timeout applies, not the read timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    request = f"PUT /{KNOWN_ID} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    try:
        writer.write(request)
        assert (await asyncio.wait_for(read_answer(reader), 5)).status == 200
        await asyncio.sleep(READ_TIMEOUT_S * 1.5)
        writer.write(request)
        assert (await asyncio.wait_for(read_answer(reader), 5)).status == 200
        idle_from = time.monotonic()
        assert await closed_within(reader, KEEPALIVE_TIMEOUT_S + 5) == b""
    finally:
        await close(writer)

    assert time.monotonic() - idle_from >= KEEPALIVE_TIMEOUT_S * 0.9


async def test_pipelined_requests_are_all_answered(server: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    request = f"PUT /{KNOWN_ID} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    try:
        writer.write(request * 3 + get("/livez"))
        statuses = [(await asyncio.wait_for(read_answer(reader), 5)).status for _ in range(4)]
    finally:
        await close(writer)

    assert statuses == [200, 200, 200, 200]


async def test_normal_clients_are_served_while_200_slow_clients_hang_on(
    server: Served, session: aiohttp.ClientSession
) -> None:
    slow = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(200)]
    try:
        for _, writer in slow:
            writer.write(b"PUT /" + KNOWN_ID.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        worst_s = 0.0
        for _ in range(20):
            started = time.monotonic()
            async with session.put(f"{server.url}/{KNOWN_ID}") as response:
                assert response.status == 200
                await response.read()
            worst_s = max(worst_s, time.monotonic() - started)
        # A generous sanity bound (2 cores shared with other work); bench/ measures latency.
        assert worst_s < 2.0
        # ...and every slow connection is closed by the server once the read timeout passed.
        ends = await asyncio.gather(
            *(closed_within(reader, READ_TIMEOUT_S + 10) for reader, _ in slow)
        )
        assert all(end.startswith(b"HTTP/1.1 408 ") for end in ends)
    finally:
        await asyncio.gather(*(close(writer) for _, writer in slow))


def test_timeouts_are_settings_with_defaults() -> None:
    assert (Settings().request_read_timeout_s, Settings().keepalive_timeout_s) == (10.0, 75.0)
    settings = Settings.from_environ(
        {"ZEROPROBE_REQUEST_READ_TIMEOUT": "3s", "ZEROPROBE_KEEPALIVE_TIMEOUT": "2m"}
    )
    assert (settings.request_read_timeout_s, settings.keepalive_timeout_s) == (3.0, 120.0)
    with pytest.raises(SettingsError, match="ZEROPROBE_REQUEST_READ_TIMEOUT"):
        Settings.from_environ({"ZEROPROBE_REQUEST_READ_TIMEOUT": "soon"})


# --- methods and paths ---------------------------------------------------------------------

WRONG_METHODS = [
    ("DELETE", f"/{KNOWN_ID}"),
    ("POST", f"/{KNOWN_ID}"),
    ("PATCH", f"/{KNOWN_ID}"),
    ("POST", "/api/v1/results"),
    ("PUT", f"/api/v1/results/{KNOWN_ID}"),
    ("DELETE", f"/api/v1/results/{KNOWN_ID}/history"),
    ("POST", "/livez"),
    ("DELETE", "/metrics"),
    ("GET", "/-/reload"),
    ("POST", "/openapi.json"),
    ("PROPFIND", "/liveness"),
    ("TRACE", "/"),
]


@pytest.mark.parametrize(("method", "path"), WRONG_METHODS)
async def test_unknown_method_on_known_path_is_405_json_with_allow(
    server: Served, method: str, path: str
) -> None:
    answer = await raw(server, get(path, method=method))

    assert answer.status == 405
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["status"] == 405
    assert answer.headers["allow"]
    assert method not in answer.headers["allow"].split(",")


async def test_method_unknown_to_http_parser_is_400_json(server: Served) -> None:
    answer = await raw(server, get("/readyz", method="FOO"))

    assert answer.status == 400
    assert answer.json() == {"error": "bad request: BadHttpMethod", "status": 400}


async def test_put_on_a_reserved_get_path_is_an_unknown_id(server: Served) -> None:
    """PUT /metrics: /{service_id} serves PUT, and no probe is called "metrics"."""
    answer = await raw(server, get("/metrics", method="PUT"))

    assert answer.status == 404
    assert answer.json()["status"] == 404


ODD_PATHS = [
    "/..%2f",
    "/..%2f..%2fetc%2fpasswd",
    "/%2e%2e/",
    "/%2e%2e",
    "//x",
    "//",
    "/a/b/c",
    "/api/v1/results/a/b/c",
    "/" + "i" * 10_000,
    "/api/v1/results/" + "i" * 7_000,
    "/ui/" + "i" * 7_000,
    "/ünïcödé",
    "/%C3%BCn%C3%AFc%C3%B6d%C3%A9",
    "/%F0%9F%92%A5",
    "/%ff%fe",
    "/%00",
    "/a%00b",
    "/api/v1/results/%00",
    "/ui/%00",
    "/id%20with%20spaces",
    "/%",
    "/%zz",
    "/static/..%2f..%2fpyproject.toml",
    "/static/%2e%2e/app.js",
    "/?only=%00&refresh=NaN",
    "/?refresh=1e999",
    "/?refresh=-1",
    "/ui/x?refresh=%ff",
    f"/{KNOWN_ID}?x=%00",
    "/-/",
    "/-/reload/x",
    "/.",
    "/~",
]


@pytest.mark.parametrize("path", ODD_PATHS)
async def test_odd_path_is_a_clean_answer(server: Served, path: str) -> None:
    for method in ("GET", "PUT", "HEAD"):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(get(path, method=method))
            await writer.drain()
            head = await asyncio.wait_for(reader.read(), 10)
        finally:
            await close(writer)
        status = int(head.split(b" ", 2)[1])
        assert status < 500, (method, path, head[:300])
        assert status in (200, 400, 404, 405, 413), (method, path, status)
        body = head.partition(b"\r\n\r\n")[2]
        if status in (404, 405) and method != "HEAD" and not path.startswith("/ui/"):
            assert json.loads(body)["status"] == status
        assert b"Traceback" not in head


async def test_odd_raw_request_lines_get_a_4xx(server: Served) -> None:
    for request in (
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET /ü HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)
        finally:
            await close(writer)
        if answer:  # a closed connection is also a fine answer to garbage
            status = int(answer.split(b" ", 2)[1])
            assert 200 <= status < 500, (request[:40], answer[:200])


def test_serve_raises_the_open_files_limit_within_the_hard_limit() -> None:
    """Each connection holds a descriptor: `serve` lifts a low soft limit (here 256)."""
    code = (
        "import resource; from zeroprobe.web.server import raise_open_files_limit; "
        "print(raise_open_files_limit(4096), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )

    def low_soft_limit() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    done = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=low_soft_limit,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    expected = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    assert done.stdout.split() == [str(expected), str(expected)]
