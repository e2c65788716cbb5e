"""Helpers of the benchmarks: child processes, wrk, /proc readings, spec folders."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from schemas.context_spec import connection_env_var

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
#: The cores this process may use when it starts (before keep_off_server_core narrows them).
CORES = frozenset(os.sched_getaffinity(0))
PACKAGES = (
    "aiohttp",
    "pymongo",
    "APScheduler",
    "prometheus-client",
    "pydantic",
    "mockupdb",
    "watchfiles",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> list[tuple[str, str]]:
    """Facts about the machine and the software, as table rows."""
    rows = [
        ("CPU cores", str(os.cpu_count())),
        ("CPU", _cpu_model()),
        ("Python", platform.python_version()),
        ("OS", platform.platform()),
    ]
    rows += [(name, metadata.version(name)) for name in PACKAGES]
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        rows.append(("wrk", (out.stdout or out.stderr).split("\n")[0].strip()))
    return rows


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# Processes -------------------------------------------------------------------------------


def split_cores() -> tuple[frozenset[int], frozenset[int]] | None:
    """(the measured server's core, the others): the server alone on the last core, and the
    simulated targets, wrk and this process on the rest, so that their cost stays out of the
    server's CPU and latency figures. None on a single-core machine."""
    cores = sorted(CORES)
    if len(cores) < 2:
        return None
    return frozenset(cores[-1:]), frozenset(cores[:-1])


def keep_off_server_core() -> frozenset[int] | None:
    """Move this process (and so the children it starts later, unless told otherwise) off the
    server's core; that core, or None on a single-core machine."""
    cores = split_cores()
    if cores is None:
        return None
    os.sched_setaffinity(0, cores[1])
    return cores[0]


@contextmanager
def child(
    args: Sequence[str],
    env: Mapping[str, str | None] | None = None,
    cpus: frozenset[int] | None = None,
) -> Iterator[subprocess.Popen[str]]:
    """A child process (on `cpus`, with every thread it starts: util-linux's taskset), stopped
    (SIGTERM, then SIGKILL) by its pid on exit. `env` adds to this one's environment; a None
    value removes the variable."""
    on_cpus = [] if cpus is None else ["taskset", "-c", ",".join(map(str, sorted(cpus)))]
    merged = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [*on_cpus, *args],
        env={name: value for name, value in merged.items() if value is not None},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        yield proc
    finally:
        stop(proc, grace_s=10)


def stop(proc: subprocess.Popen[Any], grace_s: float = 20) -> None:
    """SIGTERM, then SIGKILL after `grace_s` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_http(url: str, timeout_s: float = 60.0, ok: int = 200) -> float:
    """Seconds until `url` answers `ok` (TimeoutError after `timeout_s`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == ok:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {ok} within {timeout_s}s")


def fetch(url: str, token: str = "") -> tuple[bytes, float]:
    """Body of a GET (with `token` as a bearer header) and the seconds it took."""
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(
        urllib.request.Request(url, headers=headers), timeout=30
    ) as response:
        body: bytes = response.read()
    return body, time.perf_counter() - started


@contextmanager
def simulated_sets(count: int, duration_s: float) -> Iterator[list[str]]:
    """`count` simulated replica sets in a child process: their URIs."""
    args = [PYTHON, "-m", "bench.sims", "--sets", str(count), "--duration", str(duration_s)]
    with child(args) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulated replica sets did not start")
        uris: list[str] = json.loads(line)
        yield uris


# /proc ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def sockets_to(pid: int, ports: set[int]) -> int:
    """TCP sockets of `pid` connected to one of `ports` on loopback."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            remote_port = int(parts[2].split(":")[1], 16)
            if remote_port in ports and parts[9] in inodes:
                count += 1
    return count


def uri_ports(uris: Sequence[str]) -> set[int]:
    return {int(p) for uri in uris for p in re.findall(r"127\.0\.0\.1:(\d+)", uri)}


# Specs ---------------------------------------------------------------------------------


SPEC = """---
service_id: {sid}
kind: mongo_replication_lag
description: Benchmark probe {index}
connection: {label}
interval: {interval}s
timeout: {timeout}s
---
Benchmark spec.
"""


def write_specs(folder: Path, count: int, labels: Sequence[str], interval_s: int) -> list[str]:
    """`count` Mongo specs spread over `labels`; their service ids."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for index in range(count):
        sid = f"bench.mongo.p{index:05d}"
        label = labels[index % len(labels)]
        timeout = 2 if interval_s <= 5 else 5
        text = SPEC.format(sid=sid, index=index, label=label, interval=interval_s, timeout=timeout)
        (folder / f"{sid}.md").write_text(text)
        ids.append(sid)
    return ids


def connection_env(uris: Sequence[str]) -> dict[str, str]:
    """ZEROPROBE_CONNECTION_<LABEL> for labels bench0..benchN, one per simulated set."""
    return {connection_env_var(f"bench{i}"): uri for i, uri in enumerate(uris)}


def labels(count: int) -> list[str]:
    return [f"bench{i}" for i in range(count)]


# wrk -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkRun:
    requests_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk(
    url: str,
    duration_s: int,
    connections: int,
    delay_ms: int = 0,
    token: str = "",
    *,
    script: str = "",
) -> WrkRun:
    """wrk PUTs against `url` (one thread); `delay_ms` paces each connection; `token` is sent
    as `Authorization: Bearer <token>`; `script` (a bench/*.lua) replaces put.lua."""
    script_path = ROOT / "bench" / (script or ("put_paced.lua" if delay_ms else "put.lua"))
    env = {**os.environ, "BENCH_DELAY_MS": str(delay_ms), "BENCH_TOKEN": token}
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s"]
    args.append(str(script_path))
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True, env=env).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return WrkRun(rate, _latency(out, "50%"), _latency(out, "99%"), errors)


def _latency(out: str, which: str) -> float:
    match = re.search(rf"^\s+{re.escape(which)}\s+([\d.]+)(us|ms|s)\b", out, re.M)
    if match is None:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    return float(match.group(1)) * scale


# Prometheus histograms -----------------------------------------------------------------


def plus(
    a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Bucket counts of two runs together (same buckets)."""
    if not a:
        return list(b)
    base = dict(b)
    return [(bound, count + base.get(bound, 0.0)) for bound, count in a]


def histogram(text: str, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a label-free histogram in an exposition."""
    buckets = []
    for match in re.finditer(rf'^{name}_bucket{{le="([^"]+)"}} ([\d.e+]+)$', text, re.M):
        buckets.append((float(match.group(1)), float(match.group(2))))
    return buckets


def quantile(buckets: Sequence[tuple[float, float]], q: float) -> float:
    """Upper bound of the bucket holding quantile `q` (a conservative estimate)."""
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    rank = q * buckets[-1][1]
    for bound, count in buckets:
        if count >= rank:
            return bound
    return float("inf")


def minus(
    after: Sequence[tuple[float, float]], before: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Bucket counts observed between two scrapes."""
    base = dict(before)
    return [(bound, count - base.get(bound, 0.0)) for bound, count in after]
