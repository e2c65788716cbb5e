"""Fixtures of the http_endpoint tests: spec factory, loopback servers (plain and TLS).

The main suite's helpers (tests.hostile_servers, tests.test_cli_process) live in the
repository's `tests` package: the repository's root is put on the import path, as pytest does
when it collects that package itself.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from endpoint_helpers import LOCALHOST, SpecFactory, make_spec_factory  # noqa: E402

#: Start `app` on 127.0.0.1 (over TLS with a server context); its base URL.
ServeApp = Callable[..., Awaitable[str]]


@pytest.fixture
def make_spec() -> SpecFactory:
    """A valid http_endpoint spec (label `shop`, timeout 2s); keyword overrides replace fields."""
    return make_spec_factory()


@pytest.fixture
async def serve_app() -> AsyncIterator[ServeApp]:
    """Serve aiohttp apps on loopback until the test ends."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, *, tls: ssl.SSLContext | None = None) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, LOCALHOST, 0, ssl_context=tls)
        await site.start()
        port = int(runner.addresses[0][1])
        return f"{'https' if tls is not None else 'http'}://{LOCALHOST}:{port}"

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()
