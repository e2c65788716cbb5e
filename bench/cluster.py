"""Scale-out: S shards × R replicas of `zeroprobe serve` on loopback (`ZEROPROBE_PEERS`).

The cluster (2 shards × 2 replicas by default) and one process (S = R = 1) probe the same
`prometheus_query` specs against simulated Prometheus servers, in turns, a fresh set of
processes each turn, the order reversed every other round. Measured:

- `PUT /<id>` through pod 0 for the ids its shard owns (answered from its own store) and for
  the ids the other shard owns (forwarded to that shard's replicas), with wrk cycling through
  each set of ids (bench/put_ids.lua): as fast as it answers, then paced at half the forwarded
  rate; the two sets in turns;
- CPU per owned probe: each pod's CPU seconds over whole probe intervals (/proc/<pid>/stat)
  divided by the probes its shard owns, against the single process's divided by all of them;
  start-up to ready, RSS and the size of /metrics per process.

python -m bench.cluster                # prints the Markdown section (bench.main --only cluster)
python -m bench.cluster --tiny         # seconds, tiny sizes
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench import live
from bench.common import (
    PYTHON,
    ROOT,
    WrkRun,
    _latency,
    cpu_seconds,
    fetch,
    free_port,
    histogram,
    median,
    minus,
    quantile,
    rss_bytes,
    stop,
    wait_http,
)
from schemas.context_spec import connection_env_var
from zeroprobe.config.topology import jump_hash, stable_hash64

#: Settings left at their defaults whatever this shell says (as bench/live.py does), and the
#: topology variables, which only the cluster's pods get.
DEFAULTED = (
    *live.DEFAULTED,
    "ZEROPROBE_NOTIFIERS",
    "ZEROPROBE_DATA_DIR",
    "ZEROPROBE_SHARDS",
    "ZEROPROBE_REPLICAS",
    "ZEROPROBE_POD_INDEX",
    "ZEROPROBE_POD_NAME",
    "ZEROPROBE_PEERS",
    "ZEROPROBE_PEER_URL",
    "ZEROPROBE_PREVIOUS_SHARDS",
)

SPEC = """service_id: {sid}
kind: prometheus_query
description: Scale-out query {index}
connection: {label}
interval: {interval_s}s
timeout: {timeout_s:g}s
query: sum(rate(http_requests_total{{code=~"5.."}}[5m])) / sum(rate(http_requests_total[5m]))
thresholds: {{yellow: 0.01, red: 0.05}}
"""


@dataclass(frozen=True)
class Sizes:
    """What one run measures."""

    specs: int
    interval_s: int
    shards: int
    replicas: int
    rounds: int  # of the turns (cluster, single process), each a fresh set of processes
    intervals: int  # whole probe intervals of CPU per process
    wrk_rounds: int  # per cluster turn, each set of ids once per round
    wrk_s: int
    connections: int
    targets: int  # simulated Prometheus servers


#: 20,000 specs as the issue asks, at 120 s rather than 60 s: at 60 s the four pods need about
#: 1.3 cores for probing alone (about 2 ms of CPU a run, 40,000 runs a minute), and on this
#: 2-core machine, shared with other work, they starved: runs overran their interval and never
#: finished a first round. At 120 s each pod probes 10,000 ids as one process probes 5,000 at
#: 60 s.
FULL = Sizes(
    specs=20_000,
    interval_s=120,
    shards=2,
    replicas=2,
    rounds=2,
    intervals=1,
    wrk_rounds=3,
    wrk_s=5,
    connections=32,
    targets=4,
)
TINY = Sizes(
    specs=40,
    interval_s=2,
    shards=2,
    replicas=2,
    rounds=1,
    intervals=1,
    wrk_rounds=1,
    wrk_s=1,
    connections=4,
    targets=1,
)


def owner(service_id: str, shards: int) -> int:
    """The shard that probes `service_id` (the rule of zeroprobe.config.topology)."""
    return jump_hash(stable_hash64(service_id), shards)


def write_specs(folder: Path, count: int, targets: int, interval_s: int) -> list[str]:
    """`count` prometheus_query specs spread over the labels prom0 … prom<targets-1>."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for index in range(count):
        sid = f"bench.prom.q{index:05d}"
        label, timeout_s = f"prom{index % targets}", min(5.0, interval_s / 2)
        text = SPEC.format(
            sid=sid, index=index, label=label, interval_s=interval_s, timeout_s=timeout_s
        )
        (folder / f"{sid}.yaml").write_text(text)
        ids.append(sid)
    return ids


@dataclass(frozen=True)
class Setup:
    """What every turn of a run shares."""

    sizes: Sizes
    folder: Path  # the contexts folder
    ids: list[str]
    urls: list[str]  # of the simulated Prometheus servers
    tmp: Path  # logs and id lists


# Processes ------------------------------------------------------------------------------


@contextmanager
def simulated_prometheus(count: int, lifetime_s: float) -> Iterator[list[str]]:
    """`count` steady (GREEN) simulated Prometheus servers, each in a child process of its own
    (one Python process serves a few thousand queries a second, and the cluster asks twice as
    many as one zeroprobe): their URLs."""
    with ExitStack() as stack:
        urls: list[str] = []
        for _ in range(count):
            args = [PYTHON, "-m", "bench.cluster", "--serve-targets", "1"]
            proc = subprocess.Popen(
                [*args, "--lifetime", str(lifetime_s)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                cwd=ROOT,
            )
            stack.callback(stop, proc)
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("a simulated Prometheus server did not start")
            urls += json.loads(line)
        yield urls


def serve_targets(count: int, lifetime_s: float) -> None:
    """The child of simulated_prometheus: serve until SIGTERM or `lifetime_s`."""
    # Here, not at the top: bench.targets brings MockupDB, pymongo and aiohttp, which only
    # this child needs; `python -m bench.main` imports this module for every section.
    from bench.targets import http_target, steady_prometheus_app  # noqa: PLC0415

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    targets = [http_target(f"prom{i}", "prometheus", steady_prometheus_app) for i in range(count)]
    try:
        print(json.dumps([t.url for t in targets]), flush=True)
        done.wait(lifetime_s)
    finally:
        for target in targets:
            target.close()


@dataclass
class Pod:
    """One `zeroprobe serve` of the run."""

    index: int
    shard: int
    replica: int
    base: str
    proc: subprocess.Popen[str]
    log: Path
    ready_s: float = float("nan")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of its log, each cut at 300 characters (the start-up line lists
        every id)."""
        tail = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(line[:300] for line in tail)


class Pods:
    """S × R `zeroprobe serve` processes on loopback (one, without any topology variable, when
    S = R = 1), stopped by pid when `stack` closes."""

    def __init__(self, setup: Setup, shards: int, replicas: int, stack: ExitStack) -> None:
        self.setup, self.shards, self.replicas, self.stack = setup, shards, replicas, stack
        self.ports = [free_port() for _ in range(shards * replicas)]
        self.all: list[Pod] = []
        stack.callback(self.stop_all)

    def start(self, index: int) -> Pod:
        """Start pod `index` (again, on the same port, after a restart)."""
        count = self.shards * self.replicas
        env: dict[str, str | None] = {
            **dict.fromkeys(DEFAULTED),
            **{connection_env_var(f"prom{i}"): url for i, url in enumerate(self.setup.urls)},
            "ZEROPROBE_CONTEXTS": str(self.setup.folder),
            "ZEROPROBE_PORT": str(self.ports[index]),
        }
        if count > 1:
            env.update(
                ZEROPROBE_SHARDS=str(self.shards),
                ZEROPROBE_REPLICAS=str(self.replicas),
                ZEROPROBE_POD_INDEX=str(index),
                ZEROPROBE_PEERS=",".join(f"http://127.0.0.1:{port}" for port in self.ports),
            )
        merged = {**os.environ, **env}
        name = f"pod{index}-{self.shards}x{self.replicas}-{time.monotonic_ns()}.log"
        log = self.setup.tmp / name
        handle: IO[bytes] = self.stack.enter_context(log.open("wb"))
        proc = subprocess.Popen(
            [PYTHON, "-m", "zeroprobe", "serve"],
            env={k: v for k, v in merged.items() if v is not None},
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        base = f"http://127.0.0.1:{self.ports[index]}"
        pod = Pod(index, index // self.replicas, index % self.replicas, base, proc, log)
        if index < len(self.all):
            self.all[index] = pod
        else:
            self.all.append(pod)
        return pod

    def stop_all(self) -> None:
        """SIGTERM to every pod at once, then SIGKILL to those still running after 20 s."""
        running = [pod.proc for pod in self.all if pod.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self, index: int, timeout_s: float) -> float:
        """Stop pod `index` (SIGTERM, as a rollout does), start it again: seconds from its
        start to ready."""
        stop(self.all[index].proc)
        began = time.monotonic()
        pod = self.start(index)
        wait_ready(pod, began + timeout_s)
        return time.monotonic() - began


@contextmanager
def pods(setup: Setup, shards: int, replicas: int, ready_timeout_s: float) -> Iterator[Pods]:
    """S × R pods, each ready (/readyz) or the run fails with its log's tail."""
    with ExitStack() as stack:
        started = Pods(setup, shards, replicas, stack)
        began = time.monotonic()
        for index in range(shards * replicas):
            started.start(index)
        for pod in started.all:
            wait_ready(pod, began + ready_timeout_s)
            pod.ready_s = time.monotonic() - began
        yield started


def wait_ready(pod: Pod, deadline: float) -> None:
    """Until `pod` answers /readyz with 200; RuntimeError with its log's tail when it exits
    or the deadline (time.monotonic) passes first."""
    while pod.proc.poll() is None and time.monotonic() < deadline:
        try:
            wait_http(f"{pod.base}/readyz", timeout_s=1.0)
            return
        except TimeoutError:
            continue
    state = "exited" if pod.proc.poll() is not None else "not ready in time"
    raise RuntimeError(f"pod {pod.index} {state}:\n{pod.log_tail()}")


# wrk ------------------------------------------------------------------------------------


def wrk_ids(url: str, ids_file: Path, duration_s: int, connections: int, delay_ms: int) -> WrkRun:
    """wrk (one thread) PUTting each id of `ids_file` in turn (bench/put_ids.lua)."""
    script = ROOT / "bench" / "put_ids.lua"
    env = {**os.environ, "BENCH_IDS": str(ids_file), "BENCH_DELAY_MS": str(delay_ms)}
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True, env=env).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    requests_s = float(rate.group(1)) if rate else float("nan")
    return WrkRun(requests_s, _latency(out, "50%"), _latency(out, "99%"), errors)


TIMEOUT_RUNS = re.compile(
    r'^zeroprobe_probe_runs_total\{[^}]*outcome="timeout"[^}]*\} ([\d.e+]+)$', re.M
)


def timed_out(metrics: str) -> float:
    """Probe runs that reached their timeout so far, all probes together."""
    return sum(float(m.group(1)) for m in TIMEOUT_RUNS.finditer(metrics))


def forwarded_by_outcome(metrics: str) -> dict[str, float]:
    """zeroprobe_forwarded_requests_total by its outcome label."""
    pattern = r'^zeroprobe_forwarded_requests_total\{outcome="([^"]*)"\} ([\d.e+]+)$'
    return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, metrics, re.M)}


# One turn ------------------------------------------------------------------------------


@dataclass
class Turn:
    """What one set of processes measured."""

    shards: int
    replicas: int
    owned: list[int]  # probes each pod's shard owns
    cpu_s: list[float]  # each pod's CPU seconds over the measured intervals
    wall_s: float
    ready_s: list[float]
    rss_bytes: list[int]
    metrics_bytes: list[int]
    runs: list[float]  # probe runs started in the measured intervals, by pod
    timeouts: list[float] = field(default_factory=list)  # of those runs, by pod
    local: list[WrkRun] = field(default_factory=list)
    forwarded: list[WrkRun] = field(default_factory=list)
    local_paced: list[WrkRun] = field(default_factory=list)
    forwarded_paced: list[WrkRun] = field(default_factory=list)
    outcomes: dict[str, float] = field(default_factory=dict)
    forward_buckets: list[tuple[float, float]] = field(default_factory=list)
    #: Pod 1 stopped and started again: seconds to ready, and the statuses of the PUTs sent
    #: meanwhile through another shard's pod for the ids of pod 1's shard (0: no answer).
    restart_ready_s: float = float("nan")
    restart_statuses: dict[int, int] = field(default_factory=dict)


def measure(setup: Setup, shards: int, replicas: int) -> Turn:
    """Start S × R pods, measure CPU over whole intervals, then (in a cluster) wrk."""
    sizes, ids = setup.sizes, setup.ids
    owners = [owner(sid, shards) for sid in ids] if shards > 1 else [0] * len(ids)
    # Loading 20,000 specs in each of 4 processes on one busy core takes minutes, then a round.
    ready_timeout_s = 300.0 + sizes.interval_s * 3.0
    with pods(setup, shards, replicas, ready_timeout_s) as cluster:
        started = cluster.all
        owned = [owners.count(pod.shard) for pod in started]
        before = [fetch(f"{pod.base}/metrics")[0].decode() for pod in started]
        cpu0 = [cpu_seconds(pod.pid) for pod in started]
        wall0 = time.monotonic()
        time.sleep(sizes.intervals * sizes.interval_s)
        cpu1 = [cpu_seconds(pod.pid) for pod in started]
        wall_s = time.monotonic() - wall0
        after = [fetch(f"{pod.base}/metrics")[0] for pod in started]
        runs = []
        timeouts = []
        for old, new in zip(before, after, strict=True):
            timeouts.append(timed_out(new.decode()) - timed_out(old))
            delay = minus(
                histogram(new.decode(), "zeroprobe_probe_start_delay_seconds"),
                histogram(old, "zeroprobe_probe_start_delay_seconds"),
            )
            runs.append(delay[-1][1] if delay else float("nan"))
        turn = Turn(
            shards,
            replicas,
            owned,
            [b - a for a, b in zip(cpu0, cpu1, strict=True)],
            wall_s,
            [pod.ready_s for pod in started],
            [rss_bytes(pod.pid) for pod in started],
            [len(text) for text in after],
            runs,
            timeouts=timeouts,
        )
        if len(started) > 1:
            put_through(setup, started[0], owners, turn)
            restart_one(cluster, owners, turn, ready_timeout_s)
    return turn


def restart_one(cluster: Pods, owners: Sequence[int], turn: Turn, timeout_s: float) -> None:
    """Restart pod 1 (replica 1 of shard 0) while a client PUTs shard 0's ids through the
    first pod of shard 1, which forwards them to pods 0 and 1."""
    through = cluster.all[cluster.replicas]
    ids = [sid for sid, shard in zip(cluster.setup.ids, owners, strict=True) if shard == 0]
    done = threading.Event()
    statuses: Counter[int] = Counter()
    client = threading.Thread(target=put_loop, args=(through.base, ids, done, statuses))
    client.start()
    try:
        turn.restart_ready_s = cluster.restart(1, timeout_s)
        time.sleep(1.0)  # a little past ready: the restarted pod answers forwards too
    finally:
        done.set()
        client.join()
    turn.restart_statuses = dict(statuses)


def put_loop(base: str, ids: Sequence[str], done: threading.Event, statuses: Counter[int]) -> None:
    """PUT each id in turn over one keep-alive connection, 5 ms apart, until `done`;
    count the answers' statuses (0: no answer)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    index = 0
    while not done.is_set():
        try:
            conn.request("PUT", f"/{ids[index % len(ids)]}")
            response = conn.getresponse()
            response.read()
            statuses[response.status] += 1
        except (OSError, http.client.HTTPException):
            statuses[0] += 1
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
        index += 1
        time.sleep(0.005)
    conn.close()


def put_through(setup: Setup, pod: Pod, owners: Sequence[int], turn: Turn) -> None:
    """wrk on `pod`: the ids its shard owns and those it forwards, in turns; then both paced
    at half the forwarded rate."""
    sizes, ids = setup.sizes, setup.ids
    local_ids, forwarded_ids = setup.tmp / "local.ids", setup.tmp / "forwarded.ids"
    local_ids.write_text("\n".join(s for s, o in zip(ids, owners, strict=True) if o == pod.shard))
    forwarded_ids.write_text(
        "\n".join(s for s, o in zip(ids, owners, strict=True) if o != pod.shard)
    )
    before = fetch(f"{pod.base}/metrics")[0].decode()
    pairs = [(local_ids, turn.local), (forwarded_ids, turn.forwarded)]
    for index in range(sizes.wrk_rounds):
        for ids_file, runs in pairs if index % 2 == 0 else pairs[::-1]:
            runs.append(wrk_ids(pod.base, ids_file, sizes.wrk_s, sizes.connections, 0))
    # Each connection waits delay_ms after every answer: enough connections for half the
    # forwarded rate, the same for both sets.
    half = median([r.requests_s for r in turn.forwarded]) / 2
    delay_ms = 2
    paced_conns = max(1, round(half * (delay_ms + 0.5) / 1000))
    paced = [(local_ids, turn.local_paced), (forwarded_ids, turn.forwarded_paced)]
    for index in range(sizes.wrk_rounds):
        for ids_file, runs in paced if index % 2 == 0 else paced[::-1]:
            runs.append(wrk_ids(pod.base, ids_file, sizes.wrk_s, paced_conns, delay_ms))
    after = fetch(f"{pod.base}/metrics")[0].decode()
    old = forwarded_by_outcome(before)
    turn.outcomes = {k: v - old.get(k, 0.0) for k, v in forwarded_by_outcome(after).items()}
    turn.forward_buckets = minus(
        histogram(after, "zeroprobe_forward_duration_seconds"),
        histogram(before, "zeroprobe_forward_duration_seconds"),
    )


def run(sizes: Sizes) -> tuple[list[Turn], list[Turn]]:
    """The cluster and the single process in turns: (cluster turns, single-process turns)."""
    per_turn_s = 240 + sizes.interval_s * (4 + sizes.intervals) + sizes.wrk_rounds * 4 * 10
    lifetime_s = 600 + per_turn_s * 2 * sizes.rounds
    cluster: list[Turn] = []
    single: list[Turn] = []
    with tempfile.TemporaryDirectory(prefix="zeroprobe-cluster-") as name:
        tmp = Path(name)
        folder = tmp / "contexts"
        ids = write_specs(folder, sizes.specs, sizes.targets, sizes.interval_s)
        with simulated_prometheus(sizes.targets, lifetime_s) as urls:
            setup = Setup(sizes, folder, ids, urls, tmp)
            cases = [
                ((sizes.shards, sizes.replicas), cluster),
                ((1, 1), single),
            ]
            for index in range(sizes.rounds):
                for (shards, replicas), turns in cases if index % 2 == 0 else cases[::-1]:
                    print(f"bench.cluster: {shards} × {replicas} ...", file=sys.stderr, flush=True)
                    turns.append(measure(setup, shards, replicas))
    return cluster, single


# Report -------------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ms_per_probe(turns: Sequence[Turn], interval_s: int) -> float:
    """CPU milliseconds per owned probe per probe interval, over every pod of every turn."""
    cpu_s = sum(sum(t.cpu_s) for t in turns)
    probe_seconds = sum(sum(t.owned) * t.wall_s for t in turns)
    return cpu_s / probe_seconds * interval_s * 1000


def runs_text(runs: Sequence[float], timeouts: Sequence[float]) -> str:
    """Runs over the turns, and how many of them timed out."""
    return f"{int(sum(runs)):,} ({int(sum(timeouts)):,})"


def sum_of_medians(turns: Sequence[Turn], name: str, pods_n: int) -> float:
    """The sum over pods of each pod's median `name` (a list attribute of Turn)."""
    return sum(median([getattr(t, name)[i] for t in turns]) for i in range(pods_n))


def report(sizes: Sizes, cluster: Sequence[Turn], single: Sequence[Turn], command: str) -> str:
    pods_n = sizes.shards * sizes.replicas
    interval_note = (
        f"The interval is {sizes.interval_s} s, not the issue's 60 s: at 60 s the four pods "
        "need about 1.3 cores for probing alone (about 2 ms of CPU a run), and on this 2-core "
        "machine, shared with other work, they starved and never finished a first round "
        "(`bench/cluster.py`, FULL). "
        if sizes == FULL
        else "Smoke sizes. "
    )
    method = (
        f"{pods_n} `zeroprobe serve` processes ({sizes.shards} shards × {sizes.replicas} "
        "replicas, `ZEROPROBE_PEERS` on 127.0.0.1) and one process without topology (S = R = 1) "
        f"probe the same {sizes.specs:,} `prometheus_query` specs (`interval: "
        f"{sizes.interval_s}s`) against {sizes.targets} simulated Prometheus servers "
        "(`bench.targets.steady_prometheus_app`, a child process each), at default settings. "
        f"They take turns, {sizes.rounds} round(s), a fresh set of processes each turn, the "
        f"order reversed every other round. {interval_note}Nothing is pinned to a core, unlike "
        "the one "
        "process of the scale sections: the pods, the targets and wrk share both cores. "
        "**CPU** is the CPU seconds of each process (user + system, `/proc/<pid>/stat`) over "
        f"{sizes.intervals} whole probe interval(s) after it is ready, divided by the probes "
        "its shard owns (each pod of a shard probes all of its shard's ids)."
    )
    rows: list[list[str]] = []
    local = [r for t in cluster for r in t.local]
    forwarded = [r for t in cluster for r in t.forwarded]
    local_paced = [r for t in cluster for r in t.local_paced]
    forwarded_paced = [r for t in cluster for r in t.forwarded_paced]
    local_rps = median([r.requests_s for r in local])
    for name, runs, paced in (
        ("owned by pod 0's shard: answered from its store", local, local_paced),
        ("owned by the other shard: forwarded (one hop)", forwarded, forwarded_paced),
    ):
        rps = median([r.requests_s for r in runs])
        rows.append(
            [
                name,
                f"{rps:,.0f}",
                f"**{rps / local_rps:.2f}×**",
                f"{median([r.p50_ms for r in runs]):.2f} / {median([r.p99_ms for r in runs]):.2f}",
                f"{median([r.requests_s for r in paced]):,.0f}",
                f"{median([r.p50_ms for r in paced]):.2f} / "
                f"**{median([r.p99_ms for r in paced]):.2f}**",
                f"{sum(r.errors for r in [*runs, *paced])}",
            ]
        )
    put_head = [
        "PUT /<id> through pod 0, ids",
        f"req/s (-c{sizes.connections}, median of {len(local)})",
        "÷ answered locally",
        "p50 / p99 (ms)",
        "paced: req/s",
        "paced: p50 / p99 (ms)",
        "non-2xx and socket errors",
    ]
    outcomes: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    for turn in cluster:
        for key, value in turn.outcomes.items():
            outcomes[key] = outcomes.get(key, 0.0) + value
        buckets = [
            (bound, count + dict(turn.forward_buckets).get(bound, 0.0))
            for bound, count in (buckets or [(b, 0.0) for b, _ in turn.forward_buckets])
        ]
    forwards = ", ".join(f"{k} {int(v):,}" for k, v in sorted(outcomes.items())) or "none counted"
    hop = (
        f"; the forward itself (`zeroprobe_forward_duration_seconds`) p50 ≤ "
        f"{quantile(buckets, 0.5) * 1000:g} ms, p99 ≤ {quantile(buckets, 0.99) * 1000:g} ms "
        "(bucket bounds)"
        if buckets and buckets[-1][1]
        else ""
    )
    statuses: Counter[int] = Counter()
    for turn in cluster:
        statuses.update(turn.restart_statuses)
    answered = ", ".join(
        f"{n:,} {'without an answer' if code == 0 else f'answered {code}'}"
        for code, n in sorted(statuses.items())
    )
    restart = (
        f"**Restart** of pod 1 (replica 1 of shard 0; SIGTERM, then started again, as a "
        f"rollout does): ready after **{median([t.restart_ready_s for t in cluster]):.1f} s** "
        f"(median of {len(cluster)}; its first start, with the other pods, "
        f"{median([t.ready_s[1] for t in cluster]):.1f} s), its shard's results taken from "
        f"pod 0. Meanwhile a client PUT shard 0's ids through pod {sizes.replicas} (shard 1), "
        f"one at a time, 5 ms apart: {answered or 'none sent'}."
    )
    single_ms = ms_per_probe(single, sizes.interval_s)
    cpu_rows: list[list[str]] = []
    for index in range(pods_n):
        shard, replica = index // sizes.replicas, index % sizes.replicas
        cpu_s = sum(t.cpu_s[index] for t in cluster)
        wall_s = sum(t.wall_s for t in cluster)
        owned = median([t.owned[index] for t in cluster])
        per_probe_s = cpu_s / sum(t.owned[index] * t.wall_s for t in cluster) * sizes.interval_s
        cpu_rows.append(
            [
                f"pod {index} (shard {shard}, replica {replica})",
                f"{owned:,.0f}",
                f"{median([t.ready_s[index] for t in cluster]):.1f}",
                runs_text([t.runs[index] for t in cluster], [t.timeouts[index] for t in cluster]),
                f"{cpu_s / wall_s * 100:.1f} %",
                f"{per_probe_s * 1000:.3f}",
                f"{per_probe_s * 1000 / single_ms:.2f}×",
                f"{median([t.rss_bytes[index] for t in cluster]) / 2**20:.0f}",
                f"{median([t.metrics_bytes[index] for t in cluster]) / 1024:,.0f}",
            ]
        )
    cluster_ms = ms_per_probe(cluster, sizes.interval_s)
    cluster_cpu = sum(sum(t.cpu_s) for t in cluster) / sum(t.wall_s for t in cluster)
    cpu_rows.append(
        [
            f"**the cluster**: {pods_n} pods",
            f"{sizes.specs:,} × {sizes.replicas}",
            f"{median([max(t.ready_s) for t in cluster]):.1f} (the last pod)",
            runs_text([sum(t.runs) for t in cluster], [sum(t.timeouts) for t in cluster]),
            f"{cluster_cpu * 100:.1f} %",
            f"**{cluster_ms:.3f}**",
            f"**{cluster_ms / single_ms:.2f}×**",
            f"{sum_of_medians(cluster, 'rss_bytes', pods_n) / 2**20:.0f}",
            f"{sum_of_medians(cluster, 'metrics_bytes', pods_n) / 1024:,.0f}",
        ]
    )
    single_cpu = sum(sum(t.cpu_s) for t in single) / sum(t.wall_s for t in single)
    cpu_rows.append(
        [
            "one process (S = R = 1)",
            f"{sizes.specs:,}",
            f"{median([t.ready_s[0] for t in single]):.1f}",
            runs_text([t.runs[0] for t in single], [t.timeouts[0] for t in single]),
            f"{single_cpu * 100:.1f} %",
            f"**{single_ms:.3f}**",
            "1.00×",
            f"{median([t.rss_bytes[0] for t in single]) / 2**20:.0f}",
            f"{median([t.metrics_bytes[0] for t in single]) / 1024:,.0f}",
        ]
    )
    cpu_head = [
        "process",
        "probes owned",
        "ready after (s, median)",
        "runs measured (of them timed out)",
        "CPU of one core (mean over the intervals)",
        f"CPU per owned probe per {sizes.interval_s} s interval (ms)",
        "÷ one process",
        "RSS (MiB, median)",
        "/metrics (KiB, median)",
    ]
    per_probe_metrics = median([t.metrics_bytes[0] / t.owned[0] for t in single])
    per_pod_metrics = median(
        [t.metrics_bytes[i] / t.owned[i] for t in cluster for i in range(pods_n) if t.owned[i]]
    )
    return (
        f"{method}\n\n```\n{command}\n```\n\n"
        + table(put_head, rows)
        + f"\n\nwrk cycles through each set of ids (`bench/put_ids.lua`); the paced runs wait 2 ms "
        "after every answer on each connection, at half the forwarded rate, the same for both "
        f"sets. Forwards counted by pod 0 (`zeroprobe_forwarded_requests_total`): {forwards}"
        f"{hop}.\n\n{restart}\n\n"
        + table(cpu_head, cpu_rows)
        + f"\n\n/metrics: {per_probe_metrics:,.0f} bytes per probe in the single process, "
        f"{per_pod_metrics:,.0f} bytes per owned probe in a pod (each pod exposes its own "
        "shard's probes)."
    )


def section(tiny: bool) -> str:
    """The body of docs/benchmarks.md's "Scale-out" section (bench.main --only cluster)."""
    sizes = TINY if tiny else FULL
    cluster, single = run(sizes)
    command = (
        f"python -m bench.main --only cluster{' --tiny' if tiny else ''}"
        f"  # bench.cluster: {sizes.shards} × {sizes.replicas} vs 1 process, "
        f"{sizes.specs:,} specs at {sizes.interval_s} s, {sizes.rounds} round(s)"
    )
    return report(sizes, cluster, single, command)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="seconds, tiny sizes")
    parser.add_argument("--serve-targets", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, default=3600.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # SIGTERM (a background run has SIGINT ignored) stops the children on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.serve_targets:
        serve_targets(args.serve_targets, args.lifetime)
        return 0
    print(section(args.tiny))
    return 0


if __name__ == "__main__":
    sys.exit(main())
