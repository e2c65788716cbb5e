"""http_endpoint against the hostile targets the other kinds survive (tests/hostile_servers.py):
one plain RED line within the timeout, and a huge body read only up to the client's cap."""

from __future__ import annotations

import re
import ssl
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from endpoint_helpers import CONNECTION_VAR, NOT_PLAIN, SpecFactory, run_once, texts

from tests.hostile_servers import (
    UNRESOLVABLE_HOST,
    Behaviour,
    HostileServer,
    answers_http,
    answers_huge_header,
    answers_raw,
    fake_dns,
    floods_http,
    gzip_bomb,
    never_answers,
    self_signed_tls,
)
from zeroprobe.plugin import Grade

TIMEOUT_S = 1.0
#: What a run may take beyond its timeout on a busy machine (a sanity bound, not a target).
SLACK_S = 0.75
TEN_MB = 10 * 1024 * 1024
GARBAGE = b"\x00\x01\x02garbage \xff\xfe neither HTTP nor BSON \x7f" * 8
HEALTH = b'{"status": "ok"}'
HTTP_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class Case:
    """A hostile target and the line (after `- GET <address>/health: `) expected of it."""

    name: str
    #: None: no server at all (the host name does not resolve).
    behaviour: Behaviour | None
    expected: str
    tls_server: bool = False
    tls_client: bool = False


CASES = (
    Case("accepts and never answers", never_answers(), r"the server did not answer within 800ms"),
    Case(
        "answers garbage that is not HTTP",
        answers_raw(GARBAGE),
        r"reply of the server is not HTTP \(bad status line\)",
    ),
    Case(
        "announces a longer body than it sends, then stalls",
        answers_http(HEALTH, content_length=500),
        r"the server did not answer within 800ms",
    ),
    Case(
        "closes in the middle of the body",
        answers_http(HEALTH * 20, close_after_bytes=150),
        r"reply of the server was cut off \(received \d+ of \d+ bytes\)",
    ),
    Case(
        "closes in the middle of the reply",
        answers_http(HEALTH, close_after_bytes=20),
        r"the server closed the connection without a reply",
    ),
    Case(
        "answers a header line of 200 KB",
        answers_huge_header(200_000),
        r"reply of the server has a header larger than 8 KiB",
    ),
    Case(
        "fails certificate verification",
        answers_http(HEALTH),
        r"TLS handshake with the server failed: certificate verify failed: self-signed "
        r"certificate",
        tls_server=True,
        tls_client=True,
    ),
    Case(
        "speaks plain TCP where TLS is expected",
        answers_raw(HTTP_400),
        r"TLS handshake with the server failed: wrong version number \(the server does not "
        r"seem to speak TLS\)",
        tls_client=True,
    ),
    Case(
        "never finishes the TLS handshake",
        never_answers(),
        r"the server did not answer within 800ms",
        tls_client=True,
    ),
    Case(
        "has a host name that does not resolve",
        None,
        r"cannot connect to the server: host name not resolvable",
    ),
)


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    return self_signed_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Name resolution simulated in-process: no DNS query may leave the machine."""
    with fake_dns(monkeypatch) as asked:
        yield asked


@pytest.mark.parametrize("case", CASES, ids=[case.name.replace(" ", "-") for case in CASES])
async def test_a_hostile_target_gives_one_plain_red_line_within_the_timeout(
    make_spec: SpecFactory, case: Case, tls_context: ssl.SSLContext, no_dns: list[str]
) -> None:
    server: HostileServer | None = None
    address = f"{UNRESOLVABLE_HOST}:443"
    if case.behaviour is not None:
        server = HostileServer(case.behaviour, tls=tls_context if case.tls_server else None)
        server.start()
        address = server.address
    scheme = "https" if case.tls_client else "http"
    spec = make_spec(interval="3s", timeout=f"{TIMEOUT_S}s", checks=[{"path": "/health"}])
    try:
        started = time.perf_counter()
        result, _ = await run_once(spec, {CONNECTION_VAR: f"{scheme}://{address}"})
        elapsed_s = time.perf_counter() - started
    finally:
        if server is not None:
            server.stop()

    assert result.grade is Grade.RED, result.lines
    (text,) = texts(result)
    assert re.fullmatch(rf"- GET {re.escape(address)}/health: {case.expected}", text), text
    assert not NOT_PLAIN.search(text), text
    assert len(text) < 240, text
    assert elapsed_s <= TIMEOUT_S + SLACK_S, elapsed_s
    if case.behaviour is None:
        assert UNRESOLVABLE_HOST in no_dns, "the name went through the simulated resolver"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_10_mb_body_is_read_up_to_the_cap_and_searched_there(
    make_spec: SpecFactory, chunked: bool
) -> None:
    sent = [0]
    with HostileServer(floods_http(TEN_MB, chunked=chunked, sent=sent)) as server:
        spec = make_spec(checks=[{"path": "/big", "body_matches": "never there"}])
        tracemalloc.start()
        try:
            result, _ = await run_once(spec, {CONNECTION_VAR: f"http://{server.address}"})
            _, peak_bytes = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    (line,) = result.lines
    assert re.fullmatch(
        rf"- GET {re.escape(server.address)}/big 200 in \d+ms; body does not match 'never "
        r"there' in its first 4 MiB",
        line.text,
    ), line.text
    assert line.grade is Grade.RED
    # The whole body would be 10 MB, its join another 10 MB and its text a third: the cap
    # holds 4 MiB of bytes and 4 MiB of text, plus buffers.
    assert peak_bytes < 14 * 1024 * 1024, peak_bytes
    assert sent[0] > 4 * 1024 * 1024, "the server did send more than the cap"


async def test_a_gzip_bomb_is_inflated_only_up_to_the_cap(make_spec: SpecFactory) -> None:
    bomb = gzip_bomb(64 * 1024 * 1024)
    behaviour = answers_http(bomb, headers={"Content-Encoding": "gzip"})
    with HostileServer(behaviour) as server:
        spec = make_spec(checks=[{"path": "/", "body_not_matches": "x"}])
        tracemalloc.start()
        try:
            result, _ = await run_once(spec, {CONNECTION_VAR: f"http://{server.address}"})
            _, peak_bytes = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    (line,) = result.lines
    assert re.fullmatch(rf"- GET {re.escape(server.address)}/ 200 in \d+ms", line.text), line
    assert line.grade is Grade.GREEN
    assert peak_bytes < 14 * 1024 * 1024, peak_bytes
