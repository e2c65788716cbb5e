"""A simulated Prometheus and Alertmanager HTTP API on loopback, for `zeroprobe demo`.

One small aiohttp app answers `/api/v1/query` with a payments-api 5xx ratio that drifts
GREEN -> YELLOW -> RED -> GREEN every four minutes (whatever the query), and
`/api/v2/alerts` with the alerts such a ratio would fire. The tests use real Prometheus and
Alertmanager servers; this only lets the demo show the two kinds without them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from aiohttp import web

LOCALHOST = "127.0.0.1"
CYCLE_S = 240.0
SERVICE = "payments-api"


class Started:
    """A server that `with` starts and always stops, whatever happens inside."""

    def start(self) -> Self:
        """Start serving."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ThreadedApp(Started):
    """An aiohttp app served on 127.0.0.1 from a thread with its own event loop.

    `factory` builds a fresh app at every start (an app runs once); the port stays the same
    across stop and start, so a client sees a server go away and come back.
    """

    def __init__(self, factory: Callable[[], web.Application], port: int = 0) -> None:
        self._factory = factory
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://{LOCALHOST}:{self.port}"

    def start(self) -> Self:
        """Serve until stop(); raises what kept the server from starting."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            runner = web.AppRunner(self._factory(), access_log=None)
            try:
                loop.run_until_complete(self._serve(runner))
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                loop.run_until_complete(runner.cleanup())
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        thread = threading.Thread(target=run, name=f"threaded-app-{self.port}", daemon=True)
        thread.start()
        if not ready.wait(10):
            raise RuntimeError("the app did not start within 10s")
        if failure:
            thread.join()
            raise failure[0]
        self._loop, self._thread = loop, thread
        return self

    async def _serve(self, runner: web.AppRunner) -> None:
        await runner.setup()
        site = web.TCPSite(runner, LOCALHOST, self.port)
        await site.start()
        address: Any = runner.addresses[0]
        self.port = int(address[1])

    def stop(self) -> None:
        """Stop serving and close every connection; the port is free again afterwards."""
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def demo_error_ratio(elapsed_s: float) -> float:
    """The demo's drift every four minutes, with a plateau in each band of the example
    (YELLOW from 1%, RED from 5%): 0.4% -> 3% -> 8% -> 3% -> 0.4%."""
    keyframes = [
        (0, 0.004),
        (45, 0.004),
        (55, 0.03),
        (95, 0.03),
        (105, 0.08),
        (135, 0.08),
        (145, 0.03),
        (185, 0.03),
        (195, 0.004),
        (240, 0.004),
    ]
    t = elapsed_s % CYCLE_S
    for (t0, v0), (t1, v1) in itertools.pairwise(keyframes):
        if t0 <= t <= t1:
            return round(v0 + (v1 - v0) * (t - t0) / (t1 - t0), 5)
    return keyframes[0][1]


def _rfc3339(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat(timespec="milliseconds")


def monitoring_app(started_s: float) -> web.Application:
    """The simulated APIs; `started_s` (epoch seconds) is the start of the drift."""

    async def query(request: web.Request) -> web.Response:
        now = time.time()
        ratio = demo_error_ratio(now - started_s)
        series = {"metric": {"service": SERVICE}, "value": [now, repr(ratio)]}
        data = {"resultType": "vector", "result": [series]}
        return web.json_response({"status": "success", "data": data})

    async def alerts(request: web.Request) -> web.Response:
        now = time.time()
        ratio = demo_error_ratio(now - started_s)
        if ratio < 0.01:
            return web.json_response([])
        severity = "critical" if ratio >= 0.05 else "warning"
        since = started_s + (now - started_s) // CYCLE_S * CYCLE_S + 50
        body = [
            {
                "labels": {
                    "alertname": "HighErrorRate",
                    "service": SERVICE,
                    "severity": severity,
                    "pod": f"{SERVICE}-{pod}",
                },
                "annotations": {"summary": f"5xx ratio of {SERVICE} at {ratio:.1%}"},
                "startsAt": _rfc3339(since),
                "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
                "fingerprint": f"demo{index}",
            }
            for index, pod in enumerate(("7f9c", "b21d", "e4a0"))
        ]
        return web.json_response(body)

    app = web.Application()
    app.router.add_route("*", "/api/v1/query", query)
    app.router.add_get("/api/v2/alerts", alerts)
    return app


class SimulatedMonitoring(ThreadedApp):
    """Prometheus' query API and Alertmanager's alerts API, both at `url`."""

    def __init__(self, started_s: float | None = None) -> None:
        start = time.time() if started_s is None else started_s
        super().__init__(lambda: monitoring_app(start))
