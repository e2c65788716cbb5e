"""Benchmarks against a running `zeroprobe serve`: HTTP (wrk, A/B with a bare app) and scale.

`zeroprobe serve` runs as a user runs it: default settings (INFO logging, the contexts folder
watched) unless a case says otherwise. It runs alone on one core; the simulated targets, wrk
and this process on the other (bench.common.split_cores), so their cost stays out of its
figures. CPU is the CPU seconds of the zeroprobe process over whole probe intervals divided by
the wall time they took.
"""

from __future__ import annotations

import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    keep_off_server_core,
    labels,
    median,
    minus,
    plus,
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
#: Settings a benchmark leaves at their defaults unless a case sets them.
DEFAULTED = (
    "ZEROPROBE_CONTEXTS_POLL",
    "ZEROPROBE_CONTEXTS_WATCH",
    "ZEROPROBE_LOG_LEVEL",
    "ZEROPROBE_AUTH_TOKEN",
    "ZEROPROBE_AUTH_TOKEN_FILE",
)


@dataclass
class Serve:
    pid: int
    base: str
    ids: list[str]
    ready_s: float
    uris: list[str]
    #: The core zeroprobe runs on (None: not pinned, a single-core machine).
    core: frozenset[int] | None


@contextmanager
def serve(
    count: int, interval_s: int, lifetime_s: float, extra_env: dict[str, str] | None = None
) -> Iterator[Serve]:
    """`zeroprobe serve` with `count` specs on SETS simulated replica sets, ready: default
    settings but for `extra_env`, alone on its core (the targets on the other)."""
    core = keep_off_server_core()
    with tempfile.TemporaryDirectory(prefix="zeroprobe-bench-") as tmp:
        folder = Path(tmp) / "contexts"
        ids = write_specs(folder, count, labels(SETS), interval_s)
        port = free_port()
        with simulated_sets(SETS, lifetime_s) as uris:
            env: dict[str, str | None] = {
                **dict.fromkeys(DEFAULTED),  # not this shell's values: the defaults
                **connection_env(uris),
                "ZEROPROBE_CONTEXTS": str(folder),
                "ZEROPROBE_PORT": str(port),
                **(extra_env or {}),
            }
            with child([PYTHON, "-m", "zeroprobe", "serve"], env, core) as proc:
                base = f"http://127.0.0.1:{port}"
                try:
                    ready_s = wait_http(f"{base}/readyz", timeout_s=max(60.0, interval_s * 3))
                except TimeoutError:
                    ready_s = float("inf")  # overloaded: measure it anyway, say so
                    wait_http(f"{base}/livez")
                yield Serve(proc.pid, base, ids, ready_s, uris, core)


@contextmanager
def bare_app(
    body: bytes, lifetime_s: float, core: frozenset[int] | None
) -> Iterator[tuple[str, int]]:
    """The baseline of the HTTP benchmark, on zeroprobe's core (wrk runs on the other): its
    URL and pid (the pid of python itself: `child` execs taskset, which execs python)."""
    with tempfile.NamedTemporaryFile(prefix="zeroprobe-bench-", suffix=".json") as file:
        file.write(body)
        file.flush()
        port = free_port()
        args = ["--port", str(port), "--body", file.name, "--duration", str(lifetime_s)]
        with child([PYTHON, "-m", "bench.bare_app", *args], cpus=core) as proc:
            url = f"http://127.0.0.1:{port}/x"
            wait_http_put(url)
            yield url, proc.pid


def wait_http_put(url: str) -> None:
    for _ in range(200):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(url)


@dataclass
class Runs:
    """The wrk runs against one server, and the CPU seconds it spent during them."""

    pid: int
    runs: list[WrkRun] = field(default_factory=list)
    cpu_s: float = 0.0
    requests: float = 0.0

    def measure(
        self,
        url: str,
        duration_s: int,
        connections: int,
        *,
        delay_ms: int = 0,
        token: str = "",
        script: str = "",
    ) -> None:
        cpu0 = cpu_seconds(self.pid)
        run = wrk(url, duration_s, connections, delay_ms, token, script=script)
        self.cpu_s += cpu_seconds(self.pid) - cpu0
        self.requests += run.requests_s * duration_s
        self.runs.append(run)

    def cpu_us_per_request(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else float("nan")


def http(
    probes: int,
    rounds: int,
    duration_s: int,
    connections: int,
    token: str = "",
    *,
    script: str = "put.lua",
    paced: bool = True,
) -> dict[str, float]:
    """wrk with `script` (a bench/*.lua: PUT, PUT with a body, GET) on zeroprobe vs the bare
    app, alternating; then, when `paced`, both at half zeroprobe's rate. With `token`,
    zeroprobe runs with access control on and wrk sends the token to both. CPU per request:
    each server's CPU seconds over all its full-rate runs divided by the requests answered,
    steadier on a shared machine than the request rates."""
    lifetime = 120 + rounds * duration_s * 4 + probes / 10
    extra_env = {"ZEROPROBE_AUTH_TOKEN": token} if token else {}
    with serve(max(1, probes), 5 if probes else 3600, lifetime, extra_env) as zp:
        url = f"{zp.base}/{zp.ids[0]}"
        body, _ = fetch(url, token)
        with bare_app(body, lifetime, zp.core) as (bare, bare_pid):
            zp_full, bare_full = Runs(zp.pid), Runs(bare_pid)
            for index in range(rounds):
                pair = [(url, zp_full), (bare, bare_full)]
                for target, runs in pair if index % 2 == 0 else pair[::-1]:
                    runs.measure(target, duration_s, connections, token=token, script=script)
            zp_rate = median([r.requests_s for r in zp_full.runs])
            half = zp_rate / 2
            # Each connection waits delay_ms after every answer: enough connections for `half`.
            delay_ms = 2
            paced_conns = max(1, round(half * (delay_ms + 0.3) / 1000))
            zp_half, bare_half = Runs(zp.pid), Runs(bare_pid)
            for index in range(rounds if paced else 0):
                pair = [(url, zp_half), (bare, bare_half)]
                for target, runs in pair if index % 2 == 0 else pair[::-1]:
                    runs.measure(target, duration_s, paced_conns, delay_ms=delay_ms, token=token)
    zp_runs, bare_runs = zp_full.runs, bare_full.runs
    every = [*zp_runs, *bare_runs, *zp_half.runs, *bare_half.runs]
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
        "zp_cpu_us": zp_full.cpu_us_per_request(),
        "bare_cpu_us": bare_full.cpu_us_per_request(),
        "half_rps": median([r.requests_s for r in zp_half.runs]),
        "half_zp_p50_ms": median([r.p50_ms for r in zp_half.runs]),
        "half_zp_p99_ms": median([r.p99_ms for r in zp_half.runs]),
        "half_bare_p99_ms": median([r.p99_ms for r in bare_half.runs]),
        "errors": sum(r.errors for r in every),
    }


def scale(
    count: int, interval_s: int, window_s: float, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    """A live run: readiness, then CPU over whole probe intervals filling `window_s` (at least
    one), start jitter and probe duration of every run meanwhile, sockets, RSS, /metrics."""
    intervals = max(1, int(window_s // interval_s))
    lifetime = 180 + intervals * interval_s * 2 + count / 100
    with serve(count, interval_s, lifetime, extra_env) as zp:
        text_before = fetch(f"{zp.base}/metrics")[0].decode()
        cpu: list[tuple[float, float]] = []  # (CPU seconds, wall seconds) of each interval
        sockets: list[int] = []
        for _ in range(intervals):
            cpu0, wall0 = cpu_seconds(zp.pid), time.monotonic()
            time.sleep(interval_s)
            cpu.append((cpu_seconds(zp.pid) - cpu0, time.monotonic() - wall0))
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
        per_interval = [c / w for c, w in cpu]
        return {
            "specs": count,
            "interval_s": interval_s,
            "intervals": intervals,
            "ready_s": zp.ready_s,
            "runs": delay[-1][1] if delay else 0.0,
            "cpu_s": sum(c for c, _ in cpu),
            "wall_s": sum(w for _, w in cpu),
            "cpu_core": sum(c for c, _ in cpu) / sum(w for _, w in cpu),
            "cpu_min": min(per_interval),
            "cpu_median": median(per_interval),
            "cpu_max": max(per_interval),
            "jitter_p50_s": quantile(delay, 0.5),
            "jitter_p99_s": quantile(delay, 0.99),
            "duration_p99_s": quantile(duration, 0.99),
            "sockets_max": max(sockets),
            "rss_mib": rss_bytes(zp.pid) / 2**20,
            "metrics_bytes": len(renders[-1][0]),
            "metrics_ms": median([t for _, t in renders]) * 1000,
            "pinned": zp.core is not None,
            "delay_buckets": delay,  # type: ignore[dict-item]
        }


def scale_ab(
    count: int,
    interval_s: int,
    window_s: float,
    cases: list[tuple[str, dict[str, str]]],
    rounds: int,
) -> dict[str, dict[str, float]]:
    """`scale` for each case, `rounds` times, the cases' order reversed every other round
    (A B C, C B A, ...), so that what else the machine does hits every case alike. Per case:
    CPU as the CPU seconds of all its intervals over their wall time, the lowest and highest
    interval, and start jitter over every run of every round."""
    got: dict[str, list[dict[str, float]]] = {name: [] for name, _ in cases}
    for index in range(rounds):
        for name, env in cases if index % 2 == 0 else cases[::-1]:
            got[name].append(scale(count, interval_s, window_s, env))
    out: dict[str, dict[str, float]] = {}
    for name, runs in got.items():
        delay: list[tuple[float, float]] = []
        for run in runs:
            delay = plus(delay, run["delay_buckets"])  # type: ignore[arg-type]
        cpu_s, wall_s = sum(r["cpu_s"] for r in runs), sum(r["wall_s"] for r in runs)
        out[name] = {
            "rounds": len(runs),
            "intervals": sum(r["intervals"] for r in runs),
            "ready_s": median([r["ready_s"] for r in runs]),
            "runs": sum(r["runs"] for r in runs),
            "cpu_core": cpu_s / wall_s,
            "cpu_min": min(r["cpu_min"] for r in runs),
            "cpu_max": max(r["cpu_max"] for r in runs),
            "jitter_p50_s": quantile(delay, 0.5),
            "jitter_p99_s": quantile(delay, 0.99),
            "duration_p99_s": max(r["duration_p99_s"] for r in runs),
            "rss_mib": median([r["rss_mib"] for r in runs]),
            "pinned": all(r["pinned"] for r in runs),
        }
    return out
