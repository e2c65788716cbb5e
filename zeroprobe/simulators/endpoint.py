"""A simulated web shop on loopback, for the http_endpoint example of `zeroprobe demo`.

`/health` answers 200 `{"status": "ok"}` at once; `/checkout` answers 200 too, but slows down
and recovers every four minutes, so the example's response-time bands show every colour:
about 80 ms (GREEN), 1.5 s (YELLOW from 1 s), 3.2 s (RED from 2.5 s), 1.5 s, 80 ms. Plain HTTP:
the certificate part of the kind is shown by the tests, which make their own certificates.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from aiohttp import web

from zeroprobe.simulators.monitoring import CYCLE_S, ThreadedApp


def demo_checkout_delay_s(elapsed_s: float) -> float:
    """How long /checkout takes `elapsed_s` into the drift, with a plateau in each band of the
    example (YELLOW from 1 s, RED from 2.5 s): 0.08 s -> 1.5 s -> 3.2 s -> 1.5 s -> 0.08 s."""
    keyframes = [
        (0, 0.08),
        (45, 0.08),
        (55, 1.5),
        (95, 1.5),
        (105, 3.2),
        (135, 3.2),
        (145, 1.5),
        (185, 1.5),
        (195, 0.08),
        (240, 0.08),
    ]
    t = elapsed_s % CYCLE_S
    for (t0, v0), (t1, v1) in itertools.pairwise(keyframes):
        if t0 <= t <= t1:
            return round(v0 + (v1 - v0) * (t - t0) / (t1 - t0), 3)
    return keyframes[0][1]


def endpoint_app(started_s: float) -> web.Application:
    """The shop's pages; `started_s` (epoch seconds) is the start of the drift."""

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def checkout(request: web.Request) -> web.Response:
        await asyncio.sleep(demo_checkout_delay_s(time.time() - started_s))
        return web.Response(
            text="<!doctype html><title>Checkout</title><h1>Your cart</h1>",
            content_type="text/html",
        )

    async def home(request: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>Demo shop</title><h1>Welcome</h1>",
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/checkout", checkout)
    app.router.add_get("/", home)
    return app


class SimulatedEndpoint(ThreadedApp):
    """The simulated web shop at `url` (http://127.0.0.1:PORT)."""

    def __init__(self, started_s: float | None = None) -> None:
        start = time.time() if started_s is None else started_s
        super().__init__(lambda: endpoint_app(start))
