"""Simulated targets on 127.0.0.1 that a benchmark can stop, hang and bring back.

Every target is one or more *ports*. A port is `up` (the simulated server answers), `down`
(nothing listens: connection refused) or `hang` (a plain listener accepts TCP and never
answers, holding every connection until the port leaves that state). A port keeps its number
through every change, so the prober sees the same server go away and come back.

Used by `bench.soak` (faults every 30 s under load) and `bench.failing_burst` (1,000 probes
failing at once).
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from zeroprobe.simulators import pipelines as simulated_pipelines
from zeroprobe.simulators.mongo import SimulatedReplicaSet
from zeroprobe.simulators.monitoring import LOCALHOST, ThreadedApp

PortState = Literal["up", "down", "hang"]


class HangListener:
    """Accepts TCP connections on `port` and never reads or answers them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((LOCALHOST, port))
        self._sock.listen(4096)
        # A short accept timeout lets close() stop the thread without a wake-up trick.
        self._sock.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"hang-{port}", daemon=True)
        self._thread.start()

    @property
    def held(self) -> int:
        """Connections accepted and held so far."""
        with self._lock:
            return len(self._held)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._held.append(conn)

    def close(self) -> None:
        """Stop listening and drop every held connection at once (the peers see EOF)."""
        self._closing.set()
        self._thread.join(5)
        self._sock.close()
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            conn.close()


@dataclass
class FaultyPort:
    """One port of a target and the functions that start and stop its real server."""

    port: int
    start: Callable[[], object]
    stop: Callable[[], object]
    state: PortState = "up"
    hang: HangListener | None = None

    def set(self, state: PortState) -> None:
        """Move to `state`: stop what serves now, then serve the new way on the same port."""
        if state == self.state:
            return
        if self.state == "up":
            self.stop()
        elif self.hang is not None:
            self.hang.close()
            self.hang = None
        if state == "up":
            self.start()
        elif state == "hang":
            self.hang = HangListener(self.port)
        self.state = state


@dataclass
class Target:
    """A named target (a replica set, an HTTP API) with its ports."""

    name: str
    kind: str  # mongo | prometheus | alertmanager | ci
    ports: list[FaultyPort]
    url: str  # what ZEROPROBE_CONNECTION_<LABEL> holds
    stopper: Callable[[], None] = field(default=lambda: None)

    def set(self, state: PortState, members: Sequence[int] | None = None) -> None:
        """Put every port (or those at `members`) in `state`."""
        chosen = self.ports if members is None else [self.ports[i] for i in members]
        for port in chosen:
            port.set(state)

    def close(self) -> None:
        """Stop serving in every way."""
        for port in self.ports:
            if port.hang is not None:
                port.hang.close()
                port.hang = None
        self.stopper()


def set_all(changes: Iterable[tuple[Target, PortState, Sequence[int] | None]]) -> float:
    """Apply several changes in parallel (MockupDB takes up to 1 s to stop); seconds taken."""
    started = time.monotonic()
    threads = [
        threading.Thread(target=target.set, args=(state, members))
        for target, state, members in changes
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


# Simulated servers ---------------------------------------------------------------------


def steady_lag_ms(member: int, elapsed_s: float) -> float:
    """Every secondary 200 ms behind: GREEN with the default thresholds."""
    return 0.0 if member == 0 else 200.0


def mongo_target(name: str) -> Target:
    """A 3-member simulated replica set, steady GREEN; each member is one faulty port."""
    rs = SimulatedReplicaSet(size=3, set_name=name, lag_fn=steady_lag_ms).start()
    ports = [
        FaultyPort(
            port=member.port,
            start=functools.partial(rs.restart_member, member.index),
            stop=functools.partial(rs.stop_member, member.index),
        )
        for member in rs.members
    ]
    return Target(name=name, kind="mongo", ports=ports, url=rs.uri, stopper=rs.stop)


def steady_prometheus_app() -> web.Application:
    """Prometheus' query API answering a 0.2 % error ratio for every query: GREEN."""

    async def query(request: web.Request) -> web.Response:
        series = {"metric": {"service": "payments-api"}, "value": [time.time(), "0.002"]}
        data = {"resultType": "vector", "result": [series]}
        return web.json_response({"status": "success", "data": data})

    app = web.Application()
    app.router.add_route("*", "/api/v1/query", query)
    return app


def quiet_alertmanager_app() -> web.Application:
    """Alertmanager's alerts API with nothing firing: GREEN."""

    async def alerts(request: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/api/v2/alerts", alerts)
    return app


#: Every completed run succeeded (and one is running): the CI probes are GREEN.
STEADY_STORY: tuple[tuple[str | None, int, int], ...] = (
    (None, 6, 0),
    ("success", 30, 11),
    ("success", 75, 12),
    ("success", 140, 10),
)


def steady_pipelines_app() -> web.Application:
    """The simulated GitHub / GitLab / Jenkins APIs with a green history.

    The demo's story (two failures in a row) is a module constant read at each request;
    this benchmark process serves only steady targets, so it replaces it here."""
    simulated_pipelines.STORY = STEADY_STORY
    return simulated_pipelines.pipelines_app()


def http_target(name: str, kind: str, factory: Callable[[], web.Application]) -> Target:
    """An aiohttp fake served from a thread; one faulty port."""
    app = ThreadedApp(factory).start()
    port = FaultyPort(port=app.port, start=app.start, stop=app.stop)
    return Target(name=name, kind=kind, ports=[port], url=app.url, stopper=app.stop)
