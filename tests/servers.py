"""Real Prometheus and Alertmanager servers for the tests, and the exporter Prometheus scrapes.

Debian's `prometheus` and `prometheus-alertmanager` run as child processes on free 127.0.0.1
ports with temporary storage; `stop()` always ends them. The helpers that read back what the
servers hold (`query`, `alerts`) talk to the servers' APIs directly with urllib, not through
the code under test, so the tests' expectations come from the servers themselves.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from zeroprobe.engine.core import Engine
from zeroprobe.engine.store import Result
from zeroprobe.simulators.monitoring import Started, ThreadedApp

LOCALHOST = "127.0.0.1"
START_TIMEOUT_S = 20.0
#: Prometheus takes about 6 s to its first scraped sample; later changes show within ~2 s.
SAMPLE_TIMEOUT_S = 25.0
#: Queries with this label matcher also go to a remote-read endpoint that fails: Prometheus
#: answers them with a real `warnings` entry.
WARN_MATCHER = 'zp_warn="yes"'


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(
    url: str, *, method: str = "GET", body: object = None, timeout_s: float = 5.0
) -> tuple[int, Any]:
    """One request with urllib; the status and the JSON body (error statuses included)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")


def http_status(url: str) -> int:
    """The status of GET `url`; 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            response.read()
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code
    except OSError:
        return 0


async def outage(engine: Engine, server: ServerProcess) -> tuple[Result, Result, Result]:
    """Run the engine's only probe with `server` up, stopped, then started again on the same
    port (one shared HTTP session throughout); the three results. Both always end stopped."""
    (service_id,) = engine.contexts
    try:
        await asyncio.to_thread(server.start)
        before = await engine.run_once(service_id)
        await asyncio.to_thread(server.stop)
        during = await engine.run_once(service_id)
        await asyncio.to_thread(server.start)
        after = await engine.run_once(service_id)
    finally:
        await engine.stop()
        await asyncio.to_thread(server.stop)
    return before, during, after


def poll(
    fetch: Callable[[], list[dict[str, Any]] | None],
    until: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float,
    what: str,
) -> list[dict[str, Any]]:
    """Fetch every 0.1 s until a fetched list (None: not yet) satisfies `until`; that list."""
    deadline = time.monotonic() + timeout_s
    last: list[dict[str, Any]] | None = None
    while time.monotonic() < deadline:
        last = fetch()
        if last is not None and until(last):
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: condition not met within {timeout_s}s (last: {last})")


def rfc3339(moment: dt.datetime) -> str:
    """A time as the Alertmanager API writes it."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ServerProcess(Started):
    """A child process that serves HTTP on 127.0.0.1:`port`, started and stopped by a test."""

    name = "server"
    ready_path = "/-/ready"

    def __init__(self, workdir: Path, port: int = 0) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.log_path = workdir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://{LOCALHOST}:{self.port}"

    def command(self) -> list[str]:
        """The command line (with the config written first by `write_config`)."""
        raise NotImplementedError

    def write_config(self) -> None:
        """Write the server's configuration file into `workdir`."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start the process and wait until it answers `ready_path`."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.name} exited at start:\n{self.log()}")
            if http_status(self.url + self.ready_path) == 200:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready within {START_TIMEOUT_S}s:\n{self.log()}")

    def stop(self) -> None:
        """Terminate the process (kill it if it lingers) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()

    def log(self) -> str:
        """What the process wrote so far (for failure messages)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        except OSError:
            return ""


class PrometheusServer(ServerProcess):
    """Debian's Prometheus, scraping every second; `scrape_targets` are static targets of job
    `exporter`, and targets written by `add_file_target` join job `zeroprobe`."""

    name = "prometheus"

    def __init__(
        self,
        workdir: Path,
        port: int = 0,
        *,
        scrape_targets: Sequence[str] = (),
        remote_read_url: str | None = None,
    ) -> None:
        super().__init__(workdir, port)
        self.scrape_targets = list(scrape_targets)
        self.remote_read_url = remote_read_url
        self.targets_file = workdir / "zeroprobe-targets.json"

    def write_config(self) -> None:
        if not self.targets_file.exists():
            self.targets_file.write_text("[]", encoding="utf-8")
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "exporter",
                    "static_configs": [{"targets": self.scrape_targets}],
                },
                {
                    "job_name": "zeroprobe",
                    "file_sd_configs": [
                        {"files": [str(self.targets_file)], "refresh_interval": "1s"}
                    ],
                },
            ],
        }
        if self.remote_read_url:
            config["remote_read"] = [
                {
                    "url": self.remote_read_url,
                    "read_recent": True,
                    "required_matchers": {"zp_warn": "yes"},
                }
            ]
        # JSON is YAML: no YAML writer needed.
        (self.workdir / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")

    def command(self) -> list[str]:
        return [
            "prometheus",
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={LOCALHOST}:{self.port}",
            "--log.level=warn",
        ]

    def add_file_target(self, address: str) -> None:
        """Add `address` to job `zeroprobe` (file service discovery: no restart)."""
        current = json.loads(self.targets_file.read_text(encoding="utf-8"))
        current.append({"targets": [address]})
        staged = self.targets_file.with_suffix(".tmp")
        staged.write_text(json.dumps(current), encoding="utf-8")
        os.replace(staged, self.targets_file)

    def query(self, promql: str) -> dict[str, Any]:
        """The raw reply of an instant query (errors included)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        _, body = http_json(url)
        reply: dict[str, Any] = body
        return reply

    def wait_for(
        self, promql: str, until: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        """Poll `promql` until its vector result satisfies `until`; the result."""

        def result() -> list[dict[str, Any]] | None:
            reply = self.query(promql)
            ok = reply.get("status") == "success"
            return list(reply["data"]["result"]) if ok else None

        return poll(result, until, SAMPLE_TIMEOUT_S, promql)

    def wait_for_values(self, promql: str, expected: Mapping[str, float], label: str) -> None:
        """Poll until `promql` returns exactly the series `{label: value}` of `expected`."""

        def matches(result: list[dict[str, Any]]) -> bool:
            got = {s["metric"].get(label, ""): float(s["value"][1]) for s in result}
            return got.keys() == expected.keys() and all(
                _same(got[key], value) for key, value in expected.items()
            )

        self.wait_for(promql, matches)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


class AlertmanagerServer(ServerProcess):
    """Debian's Alertmanager: no receivers; critical alerts labelled `inhibits="true"`
    inhibit warning alerts with the same `test` and `service` labels."""

    name = "alertmanager"

    def write_config(self) -> None:
        config = {
            "route": {"receiver": "null"},
            "receivers": [{"name": "null"}],
            "inhibit_rules": [
                {
                    "source_matchers": ['severity="critical"', 'inhibits="true"'],
                    "target_matchers": ['severity="warning"'],
                    "equal": ["test", "service"],
                }
            ],
        }
        (self.workdir / "alertmanager.yml").write_text(json.dumps(config), encoding="utf-8")

    def command(self) -> list[str]:
        return [
            "prometheus-alertmanager",
            f"--config.file={self.workdir / 'alertmanager.yml'}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={LOCALHOST}:{self.port}",
            # Empty: no cluster listener (it would bind 0.0.0.0:9094).
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST alerts to /api/v2/alerts; each fires for an hour unless it says otherwise."""
        until = rfc3339(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        body = [{"endsAt": until, **alert} for alert in alerts]
        status, reply = http_json(f"{self.url}/api/v2/alerts", method="POST", body=body)
        assert status == 200, reply

    def silence(self, matchers: Mapping[str, str]) -> str:
        """Create a one-hour silence of exact-match `matchers`; its id."""
        now = dt.datetime.now(dt.UTC)
        body = {
            "matchers": [
                {"name": name, "value": value, "isRegex": False, "isEqual": True}
                for name, value in matchers.items()
            ],
            "startsAt": rfc3339(now),
            "endsAt": rfc3339(now + dt.timedelta(hours=1)),
            "createdBy": "zeroprobe tests",
            "comment": "silenced by a test",
        }
        status, reply = http_json(f"{self.url}/api/v2/silences", method="POST", body=body)
        assert status == 200, reply
        silence_id: str = reply["silenceID"]
        return silence_id

    def alerts(self, *filters: str) -> tuple[int, Any]:
        """GET /api/v2/alerts with these `filter` matchers: the status and the body."""
        query = urllib.parse.urlencode([("filter", f) for f in filters])
        return http_json(f"{self.url}/api/v2/alerts?{query}")

    def wait_for_alerts(
        self, *filters: str, until: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        """Poll the alerts matching `filters` until `until` holds; the alerts."""

        def alerts() -> list[dict[str, Any]] | None:
            status, body = self.alerts(*filters)
            return list(body) if status == 200 else None

        return poll(alerts, until, START_TIMEOUT_S, f"alerts {filters}")


class Exporter:
    """A metrics endpoint Prometheus scrapes, whose series the tests set.

    It also answers Prometheus's remote-read requests with 503, so that queries with
    WARN_MATCHER come back with a real warning.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.server = ThreadedApp(self._app)

    @property
    def address(self) -> str:
        """127.0.0.1:PORT, the scrape target."""
        return f"{LOCALHOST}:{self.server.port}"

    def set(self, metric: str, labels: Mapping[str, str], value: float) -> None:
        """Expose `metric{labels} value` from the next scrape on."""
        with self._lock:
            self._series[(metric, tuple(sorted(labels.items())))] = value

    def remove(self, metric: str) -> None:
        """Stop exposing every series of `metric`."""
        with self._lock:
            for key in [k for k in self._series if k[0] == metric]:
                del self._series[key]

    def render(self) -> str:
        """The text exposition of the current series."""
        with self._lock:
            items = sorted(self._series.items())
        lines = []
        for (metric, labels), value in items:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{metric}{{{inner}}} {_exposition_value(value)}")
        return "\n".join(lines) + "\n"

    def _app(self) -> web.Application:
        async def metrics(request: web.Request) -> web.Response:
            return web.Response(text=self.render(), content_type="text/plain")

        async def remote_read(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=503, text="remote storage unavailable")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_post("/remote-read", remote_read)
        return app


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _exposition_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)
