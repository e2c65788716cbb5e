"""Real `zeroprobe serve` processes forming a cluster on loopback, and the target they probe.

The target is a tiny Prometheus query API: each pod reaches it under its own path
(`/pod/<index>`), and the query of each spec is its service id, so the target knows which pod
probed which id. It can be told to answer slowly (a probe round that cannot finish soon).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from zeroprobe.simulators.monitoring import ThreadedApp

REPO = Path(__file__).resolve().parents[1]
ZEROPROBE = str(Path(sys.executable).with_name("zeroprobe"))
LOCALHOST = "127.0.0.1"
FORWARDED = "X-Zeroprobe-Forwarded"


class QueryTarget(ThreadedApp):
    """Answers every query with 0.5 (GREEN against yellow 1, red 2), after `delay_s`; records
    (pod index, query) of every request."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._queries: list[tuple[int, str]] = []
        super().__init__(self._app)

    def _app(self) -> web.Application:
        async def query(request: web.Request) -> web.Response:
            form = await request.post()
            with self._lock:
                self._queries.append((int(request.match_info["pod"]), str(form.get("query"))))
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            data = {"resultType": "scalar", "result": [time.time(), "0.5"]}
            return web.json_response({"status": "success", "data": data})

        app = web.Application()
        app.router.add_post("/pod/{pod}/api/v1/query", query)
        return app

    def queries(self) -> list[tuple[int, str]]:
        with self._lock:
            return list(self._queries)

    def clear(self) -> None:
        with self._lock:
            self._queries.clear()

    def probed_by(self) -> dict[str, set[int]]:
        """Service id -> the pods that probed it."""
        by: dict[str, set[int]] = {}
        for pod, service_id in self.queries():
            by.setdefault(service_id, set()).add(pod)
        return by


def write_specs(folder: Path, ids: Iterable[str], interval: str, timeout: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for service_id in ids:
        (folder / f"{service_id}.yaml").write_text(
            f"service_id: {service_id}\n"
            "kind: prometheus_query\n"
            "connection: target\n"
            f"interval: {interval}\n"
            f"timeout: {timeout}\n"
            f"query: {service_id}\n"
            "thresholds:\n  yellow: 1\n  red: 2\n",
            encoding="utf-8",
        )


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCALHOST, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, timeout_s: float = 5
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout_s)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Pod:
    """One `zeroprobe serve` process of the cluster."""

    index: int
    port: int
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Pod:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [ZEROPROBE, "serve"], stdout=log, stderr=log, env=self.env, cwd=REPO
            )
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)
            self.popen.wait(timeout=20)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return request(self.port, "GET", path, headers)

    def put(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return request(self.port, "PUT", path, headers)

    def json(self, path: str) -> dict[str, object]:
        status, body = self.get(path)
        assert status in (200, 503), (status, body)
        loaded: dict[str, object] = json.loads(body)
        return loaded

    def wait_ready(self, timeout_s: float = 30) -> float:
        """Seconds until /readyz answered 200."""
        started = time.monotonic()
        last: object = None
        while time.monotonic() - started < timeout_s:
            if not self.running:
                raise AssertionError(f"pod {self.index} exited:\n{self.log}")
            try:
                status, body = self.get("/readyz")
            except OSError as exc:
                last = exc
            else:
                if status == 200:
                    return time.monotonic() - started
                last = body
            time.sleep(0.05)
        raise AssertionError(f"pod {self.index} not ready in {timeout_s}s ({last!r}):\n{self.log}")


@dataclass
class Cluster:
    """S × R pods with ZEROPROBE_PEERS on loopback ports, probing `target`."""

    shards: int
    replicas: int
    contexts: Path
    target: QueryTarget
    logs: Path
    ports: list[int] = field(default_factory=list)
    pods: dict[int, Pod] = field(default_factory=dict)

    def env(self, index: int, shards: int, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROPROBE_")}
        # A shrink's rollout still has the removed shards' pods: the peers list names them.
        previous = int(extra.get("ZEROPROBE_PREVIOUS_SHARDS") or 0)
        pods = max(shards, previous) * self.replicas
        env.update(
            ZEROPROBE_CONTEXTS=str(self.contexts),
            ZEROPROBE_HOST=LOCALHOST,
            ZEROPROBE_PORT=str(self.ports[index]),
            ZEROPROBE_CONTEXTS_POLL="0",
            ZEROPROBE_SHARDS=str(shards),
            ZEROPROBE_REPLICAS=str(self.replicas),
            ZEROPROBE_POD_INDEX=str(index),
            ZEROPROBE_PEERS=",".join(f"http://{LOCALHOST}:{p}" for p in self.ports[:pods]),
            ZEROPROBE_CONNECTION_TARGET=f"{self.target.url}/pod/{index}",
            # Ownership must not depend on Python's salted hash(): every pod its own seed.
            PYTHONHASHSEED=str(1000 + index * 7919 + shards),
            ZEROPROBE_LOG_LEVEL="INFO",
        )
        env.update(extra)
        return env

    def start(self, index: int, shards: int | None = None, **extra: str) -> Pod:
        shards = self.shards if shards is None else shards
        pod = Pod(
            index,
            self.ports[index],
            self.env(index, shards, **extra),
            self.logs / f"pod{index}.log",
        )
        self.pods[index] = pod.start()
        return pod

    def stop_all(self) -> None:
        for pod in self.pods.values():
            if pod.running:
                pod.kill(signal.SIGKILL)
