"""Benchmarks against a running `zeroprobe serve`: HTTP (wrk, A/B with a bare app) and scale."""

from __future__ import annotations

import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    PYTHON,
    WrkRun,
    child,
    connection_env,
    cpu_seconds,
    fetch,
    free_port,
    histogram,
    labels,
    median,
    minus,
    quantile,
    rss_bytes,
    simulated_sets,
    sockets_to,
    uri_ports,
    wait_http,
    write_specs,
    wrk,
)

SETS = 4


@dataclass
class Serve:
    pid: int
    base: str
    ids: list[str]
    ready_s: float
    uris: list[str]


@contextmanager
def serve(
    count: int, interval_s: int, lifetime_s: float, extra_env: dict[str, str] | None = None
) -> Iterator[Serve]:
    """`zeroprobe serve` with `count` specs on SETS simulated replica sets, ready."""
    with tempfile.TemporaryDirectory(prefix="zeroprobe-bench-") as tmp:
        folder = Path(tmp) / "contexts"
        ids = write_specs(folder, count, labels(SETS), interval_s)
        port = free_port()
        with simulated_sets(SETS, lifetime_s) as uris:
            env = {
                **connection_env(uris),
                "ZEROPROBE_CONTEXTS": str(folder),
                "ZEROPROBE_PORT": str(port),
                "ZEROPROBE_CONTEXTS_POLL": "0",
                "ZEROPROBE_LOG_LEVEL": "WARNING",
                **(extra_env or {}),
            }
            with child([PYTHON, "-m", "zeroprobe", "serve"], env) as proc:
                base = f"http://127.0.0.1:{port}"
                try:
                    ready_s = wait_http(f"{base}/readyz", timeout_s=max(60.0, interval_s * 3))
                except TimeoutError:
                    ready_s = float("inf")  # overloaded: measure it anyway, say so
                    wait_http(f"{base}/livez")
                yield Serve(proc.pid, base, ids, ready_s, uris)


@contextmanager
def bare_app(body: bytes, lifetime_s: float) -> Iterator[str]:
    with tempfile.NamedTemporaryFile(prefix="zeroprobe-bench-", suffix=".json") as file:
        file.write(body)
        file.flush()
        port = free_port()
        args = ["--port", str(port), "--body", file.name, "--duration", str(lifetime_s)]
        with child([PYTHON, "-m", "bench.bare_app", *args]):
            url = f"http://127.0.0.1:{port}/x"
            wait_http_put(url)
            yield url


def wait_http_put(url: str) -> None:
    for _ in range(200):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(url)


def http(
    probes: int, rounds: int, duration_s: int, connections: int, token: str = ""
) -> dict[str, float]:
    """wrk PUT on zeroprobe vs the bare app, alternating; then both at half zeroprobe's rate.
    With `token`, zeroprobe runs with access control on and wrk sends the token to both."""
    lifetime = 120 + rounds * duration_s * 4 + probes / 10
    extra_env = {"ZEROPROBE_AUTH_TOKEN": token} if token else {}
    with serve(max(1, probes), 5 if probes else 3600, lifetime, extra_env) as zp:
        url = f"{zp.base}/{zp.ids[0]}"
        body, _ = fetch(url, token)
        with bare_app(body, lifetime) as bare:
            zp_runs: list[WrkRun] = []
            bare_runs: list[WrkRun] = []
            for index in range(rounds):
                pair = [(url, zp_runs), (bare, bare_runs)]
                for target, runs in pair if index % 2 == 0 else pair[::-1]:
                    runs.append(wrk(target, duration_s, connections, token=token))
            zp_rate = median([r.requests_s for r in zp_runs])
            half = zp_rate / 2
            # Each connection waits delay_ms after every answer: enough connections for `half`.
            delay_ms = 2
            paced_conns = max(1, round(half * (delay_ms + 0.3) / 1000))
            zp_half: list[WrkRun] = []
            bare_half: list[WrkRun] = []
            for index in range(rounds):
                pair = [(url, zp_half), (bare, bare_half)]
                for target, runs in pair if index % 2 == 0 else pair[::-1]:
                    runs.append(wrk(target, duration_s, paced_conns, delay_ms, token))
    return {
        "probes": probes,
        "rounds": rounds,
        "zp_rps": zp_rate,
        "bare_rps": median([r.requests_s for r in bare_runs]),
        "ratio": median(
            [z.requests_s / b.requests_s for z, b in zip(zp_runs, bare_runs, strict=True)]
        ),
        "zp_p50_ms": median([r.p50_ms for r in zp_runs]),
        "zp_p99_ms": median([r.p99_ms for r in zp_runs]),
        "bare_p50_ms": median([r.p50_ms for r in bare_runs]),
        "bare_p99_ms": median([r.p99_ms for r in bare_runs]),
        "half_rps": median([r.requests_s for r in zp_half]),
        "half_zp_p50_ms": median([r.p50_ms for r in zp_half]),
        "half_zp_p99_ms": median([r.p99_ms for r in zp_half]),
        "half_bare_p99_ms": median([r.p99_ms for r in bare_half]),
        "errors": sum(r.errors for r in [*zp_runs, *bare_runs, *zp_half, *bare_half]),
    }


def scale(count: int, interval_s: int, window_s: float, samples: int) -> dict[str, float]:
    """A live run: readiness, CPU, jitter, probe duration, sockets, RSS, /metrics."""
    lifetime = 180 + window_s * 2 + count / 100
    with serve(count, interval_s, lifetime) as zp:
        text_before = fetch(f"{zp.base}/metrics")[0].decode()
        cpu: list[float] = []
        sockets: list[int] = []
        step = window_s / samples
        for _ in range(samples):
            cpu0, wall0 = cpu_seconds(zp.pid), time.monotonic()
            time.sleep(step)
            cpu.append((cpu_seconds(zp.pid) - cpu0) / (time.monotonic() - wall0))
            sockets.append(sockets_to(zp.pid, uri_ports(zp.uris)))
        renders = [fetch(f"{zp.base}/metrics") for _ in range(3)]
        text_after = renders[-1][0].decode()
        delay = minus(
            histogram(text_after, "zeroprobe_probe_start_delay_seconds"),
            histogram(text_before, "zeroprobe_probe_start_delay_seconds"),
        )
        duration = minus(
            histogram(text_after, "zeroprobe_probe_run_duration_seconds"),
            histogram(text_before, "zeroprobe_probe_run_duration_seconds"),
        )
        return {
            "specs": count,
            "interval_s": interval_s,
            "window_s": window_s,
            "ready_s": zp.ready_s,
            "runs": delay[-1][1] if delay else 0.0,
            "cpu_core": median(cpu),
            "jitter_p50_s": quantile(delay, 0.5),
            "jitter_p99_s": quantile(delay, 0.99),
            "duration_p99_s": quantile(duration, 0.99),
            "sockets_max": max(sockets),
            "rss_mib": rss_bytes(zp.pid) / 2**20,
            "metrics_bytes": len(renders[-1][0]),
            "metrics_ms": median([t for _, t in renders]) * 1000,
        }
