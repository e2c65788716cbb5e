"""`HttpClient.request`, the client method the kind measures with: timing, the capped read that
cuts instead of refusing, the certificate, the headers that win."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from aiohttp import web
from conftest import ServeApp
from cryptography import x509
from endpoint_helpers import DAY, make_certificate

from probes.redact import Redactor
from zeroprobe.plugin import HttpClient, MeasuredReply

CAP = 1000


def echo_app() -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("size", "10"))
        return web.Response(
            body=b"y" * size,
            headers={"X-Auth-Seen": request.headers.get("Authorization", "")},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def fetch(
    url: str,
    size: int,
    *,
    headers: dict[str, str] | None = None,
    tls_ca_file: str | None = None,
) -> MeasuredReply:
    """GET / of `url` (as user u, password p) answering `size` bytes, with a cap of CAP."""
    environ = {"ZEROPROBE_CONNECTION_T": url.replace("://", "://u:p@")}
    http = HttpClient(environ, Redactor(), max_reply_bytes=CAP)
    try:
        target = http.target("t")
        return await http.request(
            target,
            "GET",
            "/",
            where="the server",
            timeout_s=5,
            params=[("size", str(size))],
            headers=headers,
            tls_ca_file=tls_ca_file,
        )
    finally:
        await http.close()


@pytest.mark.parametrize(
    ("size", "read", "truncated"),
    [(CAP - 1, CAP - 1, False), (CAP, CAP, False), (CAP + 1, CAP, True), (50 * CAP, CAP, True)],
    ids=["below", "at", "one-over", "far-over"],
)
async def test_a_body_over_the_cap_is_cut_there_not_refused(
    serve_app: ServeApp, size: int, read: int, truncated: bool
) -> None:
    url = await serve_app(echo_app())

    reply = await fetch(url, size)

    assert (len(reply.body), reply.truncated) == (read, truncated)
    assert reply.status == 200
    assert reply.peer_certificate is None
    assert 0 < reply.elapsed_s < 5


async def test_the_connection_s_credentials_win_over_extra_headers(serve_app: ServeApp) -> None:
    url = await serve_app(echo_app())

    reply = await fetch(url, 1, headers={"Authorization": "Bearer forged", "X-A": "1"})

    assert reply.headers["x-auth-seen"] == "Basic dTpw"  # u:p


async def test_the_peer_certificate_is_the_server_s(serve_app: ServeApp, tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path, expires_in=20 * DAY)
    url = await serve_app(echo_app(), tls=certificate.server_context())

    reply = await fetch(url, 1, tls_ca_file=str(certificate.cert_path))

    assert reply.peer_certificate is not None
    served = x509.load_der_x509_certificate(reply.peer_certificate)
    assert served.not_valid_after_utc == certificate.not_after
    assert served.not_valid_after_utc > dt.datetime.now(dt.UTC)
