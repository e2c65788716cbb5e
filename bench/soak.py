"""`make soak`: a real `zeroprobe serve` for 10 minutes under wrk load while targets fail.

python -m bench.soak                 # 600 s; rewrites the soak section of docs/reliability.md
python -m bench.soak --duration 15 --sets 2 ... --out F   # the smoke run (tests/test_soak_smoke.py)

The targets are simulated on 127.0.0.1 in this process (bench/targets.py): MockupDB replica
sets, a Prometheus query API, an Alertmanager alerts API and the GitHub / GitLab / Jenkins
APIs, all steady GREEN. Every `--cycle` seconds some of them stop (connection refused), hang
(accept TCP, never answer) or lose one member, for `--fault` seconds, then come back. wrk PUTs
every known id all along; a poller PUTs each id once a second to follow its colour. The
analysis is made of small pure functions (tests/test_soak_smoke.py tests them).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import math
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, cpu_seconds, free_port, machine, rss_bytes, wait_http
from bench.targets import (
    PortState,
    Target,
    http_target,
    mongo_target,
    quiet_alertmanager_app,
    set_all,
    steady_pipelines_app,
    steady_prometheus_app,
)
from schemas.context_spec import connection_env_var

DOC = ROOT / "docs" / "reliability.md"
Observations = Mapping[str, Sequence[tuple[float, str]]]


# Pure helpers (tested) -----------------------------------------------------------------


def fault_starts(
    duration_s: float, warmup_s: float, cycle_s: float, fault_s: float, tail_s: float
) -> list[float]:
    """Seconds (from the start of the load) at which a fault cycle begins: the first after
    `warmup_s`, one every `cycle_s`, the last restored at least `tail_s` before the end."""
    starts = []
    start = warmup_s
    while start + fault_s <= duration_s - tail_s:
        starts.append(start)
        start += cycle_s
    return starts


def cycle_faults(
    cycle: int, mongo: Sequence[str], http: Sequence[str]
) -> list[tuple[str, PortState, tuple[int, ...] | None, str]]:
    """What fails in cycle `cycle`: (target, state, members or None for all, description).

    Rotating, so every target fails several times: one replica set refuses connections,
    the next one hangs, the one after loses a secondary; one HTTP API hangs or refuses."""
    faults: list[tuple[str, PortState, tuple[int, ...] | None, str]] = []
    if mongo:
        n = len(mongo)
        faults.append((mongo[cycle % n], "down", None, "replica set stopped (refused)"))
        if n > 1:
            faults.append((mongo[(cycle + 1) % n], "hang", None, "replica set hangs"))
        if n > 2:
            faults.append((mongo[(cycle + 2) % n], "down", (2,), "one secondary stopped"))
    if http:
        name = http[cycle % len(http)]
        if cycle % 2 == 0:
            faults.append((name, "hang", None, "HTTP API hangs"))
        else:
            faults.append((name, "down", None, "HTTP API stopped (refused)"))
    return faults


@dataclass(frozen=True)
class FaultEvent:
    """One fault as it happened: which target, how, when (seconds from the load start)."""

    target: str
    how: str
    start_s: float
    end_s: float
    ids: tuple[str, ...]


def red_seen(obs: Observations, event: FaultEvent, grace_s: float) -> int:
    """How many of the event's ids were seen RED between its start and `grace_s` after it."""
    return sum(
        any(event.start_s <= t <= event.end_s + grace_s and s == "RED" for t, s in obs.get(i, ()))
        for i in event.ids
    )


def first_green_after(seen: Sequence[tuple[float, str]], since_s: float) -> float | None:
    """The first GREEN observation at or after `since_s`."""
    return next((t for t, s in seen if t >= since_s and s == "GREEN"), None)


def event_recovery_s(obs: Observations, event: FaultEvent) -> float | None:
    """Seconds from the end of the fault until every one of its ids was GREEN again."""
    worst = 0.0
    for service_id in event.ids:
        green = first_green_after(obs.get(service_id, ()), event.end_s)
        if green is None:
            return None
        worst = max(worst, green - event.end_s)
    return worst


def final_recovery(obs: Observations, since_s: float) -> tuple[float | None, list[str]]:
    """After `since_s` (the last restore): seconds until every id was GREEN for good, and
    the ids whose last observation is not GREEN (None then)."""
    worst = 0.0
    not_green = []
    for service_id, seen in obs.items():
        if not seen or seen[-1][1] != "GREEN":
            not_green.append(service_id)
            continue
        bad = [t for t, s in seen if t >= since_s and s != "GREEN"]
        if bad:
            green = first_green_after(seen, bad[-1])
            worst = max(worst, (green if green is not None else bad[-1]) - since_s)
    return (None if not_green else worst), sorted(not_green)


def unexpected_non_green(
    obs: Observations, events: Sequence[FaultEvent], grace_s: float, after_s: float
) -> int:
    """Non-GREEN observations after `after_s` of an id no fault touched at that moment
    (counting `grace_s` after each fault to come back): other probes must stay GREEN."""
    windows: dict[str, list[tuple[float, float]]] = {}
    for event in events:
        for service_id in event.ids:
            windows.setdefault(service_id, []).append((event.start_s, event.end_s + grace_s))
    count = 0
    for service_id, seen in obs.items():
        spans = windows.get(service_id, [])
        for t, status in seen:
            if t >= after_s and status != "GREEN" and not any(a <= t <= b for a, b in spans):
                count += 1
    return count


def gc_pauses(log_text: str) -> list[tuple[int, float, float]]:
    """(generation, ms, monotonic s) of each collection bench/gc_trace.py logged."""
    return [
        (int(m.group(1)), float(m.group(2)), float(m.group(3)))
        for m in re.finditer(r"^gc-pause gen=(\d+) ms=([\d.]+) at=([\d.]+)$", log_text, re.M)
    ]


def parse_wrk(out: str) -> dict[str, float]:
    """The "SOAK {...}" line bench/soak.lua prints at the end of a wrk run."""
    match = re.search(r"^SOAK (\{.*\})$", out, re.M)
    if match is None:
        raise ValueError("no SOAK summary line in wrk's output")
    parsed: dict[str, float] = json.loads(match.group(1))
    return parsed


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) by nearest rank; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = math.ceil(q * len(ordered) - 1e-9)  # the tolerance absorbs 0.99 * 100 = 99.000…01
    return ordered[min(len(ordered) - 1, max(0, rank - 1))]


def document_status(body: bytes, service_id: str) -> str:
    """The status of a Zero Problem document, or why there is none."""
    try:
        return str(json.loads(body)[service_id]["status"])
    except (ValueError, KeyError, TypeError):
        return "bad document"


def replace_section(text: str, name: str, body: str) -> str:
    """`text` with the part between `<!-- name:begin -->` and `<!-- name:end -->` replaced
    by `body` (the markers appended when missing)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip() + "\n\n" + block + "\n"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(path: Path, name: str, body: str) -> None:
    """Replace one generated section of `path`, keeping the hand-written rest."""
    text = path.read_text() if path.exists() else "# Reliability\n"
    path.write_text(replace_section(text, name, body))


# Specs ---------------------------------------------------------------------------------

MONGO_SPEC = """---
service_id: {sid}
kind: mongo_replication_lag
description: Soak probe {index} of replica set {label}
connection: {label}
interval: {interval}
timeout: {timeout}
---
Soak spec.
"""

HTTP_SPECS = {
    "prometheus": """service_id: {sid}
kind: prometheus_query
description: Soak query {index}
connection: {label}
interval: {interval}
timeout: {timeout}
query: sum(rate(http_requests_total{{code=~"5.."}}[5m])) / sum(rate(http_requests_total[5m]))
thresholds: {{yellow: 0.01, red: 0.05}}
""",
    "alertmanager": """service_id: {sid}
kind: alertmanager_alerts
description: Soak alerts {index}
connection: {label}
interval: {interval}
timeout: {timeout}
matchers: ['severity=~"critical|warning"']
""",
}
CI_SPECS = (
    "provider: github\nrepository: acme/shop\nworkflow: ci.yml\n",
    "provider: gitlab\nproject: shop/api\n",
    "provider: jenkins\njob: shop/main\n",
)


def write_specs(
    folder: Path,
    *,
    targets: Sequence[Target],
    per_set: int,
    interval: str,
    timeout: str,
    http_per_api: int,
) -> dict[str, tuple[str, ...]]:
    """Specs for every target, in `folder`: the ids of each target."""
    folder.mkdir(parents=True, exist_ok=True)
    ids: dict[str, tuple[str, ...]] = {}
    for target in targets:
        got = []
        fields = {"label": target.name, "interval": interval, "timeout": timeout}
        if target.kind == "mongo":
            for index in range(per_set):
                sid = f"soak.{target.name}.lag{index:03d}"
                (folder / f"{sid}.md").write_text(MONGO_SPEC.format(sid=sid, index=index, **fields))
                got.append(sid)
        elif target.kind == "ci":
            for extra in CI_SPECS:
                provider = extra.split()[1]
                sid = f"soak.ci.{provider}"
                text = (
                    f"service_id: {sid}\nkind: pipeline_health\nconnection: {target.name}\n"
                    f"interval: {interval}\ntimeout: {timeout}\n{extra}"
                )
                (folder / f"{sid}.yaml").write_text(text)
                got.append(sid)
        else:
            for index in range(http_per_api):
                sid = f"soak.{target.name}.q{index:02d}"
                text = HTTP_SPECS[target.kind].format(sid=sid, index=index, **fields)
                (folder / f"{sid}.yaml").write_text(text)
                got.append(sid)
        ids[target.name] = tuple(got)
    return ids


# Running -------------------------------------------------------------------------------


@dataclass
class Poller:
    """PUTs every id in turn, once per `every_s`, recording its colour; GETs /livez too."""

    port: int
    ids: Sequence[str]
    every_s: float
    t0: float
    obs: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    #: (seconds from t0, latency ms) of every PUT of the poller
    latencies: list[tuple[float, float]] = field(default_factory=list)
    puts: int = 0
    non200: list[str] = field(default_factory=list)
    livez_checks: int = 0
    livez_failed: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    token: str = ""

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stop.is_set():
            started = time.monotonic()
            for service_id in self.ids:
                conn = self._put(conn, service_id)
            conn = self._livez(conn)
            self.stop.wait(max(0.0, self.every_s - (time.monotonic() - started)))
        conn.close()

    def _request(
        self, conn: http.client.HTTPConnection, method: str, path: str
    ) -> tuple[http.client.HTTPConnection, int, bytes, float]:
        started = time.perf_counter()
        try:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            return conn, response.status, body, (time.perf_counter() - started) * 1000
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            fresh = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            return fresh, 0, type(exc).__name__.encode(), (time.perf_counter() - started) * 1000

    def _put(self, conn: http.client.HTTPConnection, service_id: str) -> http.client.HTTPConnection:
        conn, status, body, latency_ms = self._request(conn, "PUT", f"/{service_id}")
        now = time.monotonic() - self.t0
        self.puts += 1
        self.latencies.append((now, latency_ms))
        if status == 200:
            colour = document_status(body, service_id)
        else:
            colour = f"HTTP {status}" if status else body.decode()
            self.non200.append(f"{now:.1f}s {service_id}: {colour}")
        self.obs.setdefault(service_id, []).append((now, colour))
        return conn

    def _livez(self, conn: http.client.HTTPConnection) -> http.client.HTTPConnection:
        conn, status, _, _ = self._request(conn, "GET", "/livez")
        self.livez_checks += 1
        self.livez_failed += status != 200
        return conn


@dataclass
class Sample:
    t_s: float
    rss: int
    cpu_s: float
    fds: int
    load1: float  # the machine's 1-minute load average: other work on the 2 cores shows here


def sample(pid: int, t_s: float) -> Sample:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return Sample(t_s, rss_bytes(pid), cpu_seconds(pid), fds, os.getloadavg()[0])


def build_targets(sets: int) -> list[Target]:
    targets = [mongo_target(f"soak{i}") for i in range(sets)]
    targets.append(http_target("prometheus", "prometheus", steady_prometheus_app))
    targets.append(http_target("alertmanager", "alertmanager", quiet_alertmanager_app))
    targets.append(http_target("ci", "ci", steady_pipelines_app))
    return targets


def raise_priority(nice: int) -> int:
    """Set this process's nice value (children started later inherit it); the value in force.

    The machine's 2 cores are shared with other work: a better priority keeps it from
    preempting the measured processes (zeroprobe, wrk, the clients, the targets)."""
    # Not allowed (not root): measure at the inherited priority; the report says which.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    return os.getpriority(os.PRIO_PROCESS, 0)


#: Left at their defaults whatever this shell says (the token is set above).
DEFAULTED = (
    "ZEROPROBE_CONTEXTS_POLL",
    "ZEROPROBE_CONTEXTS_WATCH",
    "ZEROPROBE_LOG_LEVEL",
    "ZEROPROBE_AUTH_TOKEN_FILE",
)


def start_zeroprobe(
    workdir: Path, contexts: Path, port: int, token: str, connections: Mapping[str, str]
) -> tuple[subprocess.Popen[bytes], Path]:
    """`zeroprobe serve` (under bench.gc_trace, which times its collections) on `port`, its
    output in workdir/zeroprobe.log, with default settings (INFO logging, the contexts folder
    watched) as a user runs it. Access control is on, as in production: every request carries
    `token`. `connections`: connection label -> value."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in DEFAULTED},
        **{connection_env_var(label): value for label, value in connections.items()},
        "ZEROPROBE_CONTEXTS": str(contexts),
        "ZEROPROBE_PORT": str(port),
        "ZEROPROBE_AUTH_TOKEN": token,
    }
    log_path = workdir / "zeroprobe.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [PYTHON, "-m", "bench.gc_trace", "serve"],
            env=env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return proc, log_path


def pin_apart(server_pid: int) -> bool:
    """zeroprobe alone on the last core, every thread of this process (and what it starts
    later) on the others; False when the machine has a single core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return False
    for pid, chosen in ((server_pid, {cores[-1]}), (os.getpid(), set(cores[:-1]))):
        # A mask belongs to a thread: set each one (threads started later inherit it).
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):  # a thread that just ended
                os.sched_setaffinity(int(tid), chosen)
    return True


def wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path, timeout_s: float) -> float:
    """Seconds until `url` answers 200; RuntimeError with the log's end if the server exits."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"zeroprobe serve exited with {proc.returncode}:\n{tail}")
        try:
            return wait_http(url, timeout_s=1.0) + (time.monotonic() - started)
        except TimeoutError:
            continue
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s}s")


def wait_all_green(poller: Poller, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(poller.obs.get(i) and poller.obs[i][-1][1] == "GREEN" for i in poller.ids):
            return True
        time.sleep(0.5)
    return False


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole soak; the raw figures as a dict (also written as JSON next to the log)."""
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="zeroprobe-soak-"))
    nice = raise_priority(args.nice)
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    targets = build_targets(args.sets)
    by_name = {t.name: t for t in targets}
    proc: subprocess.Popen[bytes] | None = None
    try:
        ids_by_target = write_specs(
            workdir / "contexts",
            targets=targets,
            per_set=args.specs_per_set,
            interval=args.interval,
            timeout=args.timeout,
            http_per_api=args.http_specs,
        )
        all_ids = [i for ids in ids_by_target.values() for i in ids]
        (workdir / "ids.txt").write_text("\n".join(all_ids) + "\n")
        port = free_port()
        token = secrets.token_urlsafe(24)
        proc, log_path = start_zeroprobe(
            workdir, workdir / "contexts", port, token, {t.name: t.url for t in targets}
        )
        base = f"http://127.0.0.1:{port}"
        pinned = args.pin and pin_apart(proc.pid)
        ready_s = wait_ready(proc, f"{base}/readyz", log_path, 120)
        t0 = time.monotonic()
        poller = Poller(port, all_ids, args.poll, t0, token=token)
        poll_thread = threading.Thread(target=poller.run, daemon=True)
        poll_thread.start()
        baseline_green = wait_all_green(poller, 60)
        # The load starts now: t = 0 for every figure below.
        t0 = time.monotonic()
        poller.obs.clear()
        poller.latencies.clear()
        poller.t0 = t0
        wrk_env = {
            **os.environ,
            "SOAK_IDS": str(workdir / "ids.txt"),
            "SOAK_DELAY_MS": str(args.delay_ms),
            "SOAK_TOKEN": token,
        }
        wrk_cmd = [
            "wrk",
            "-t1",
            f"-c{args.connections}",
            f"-d{int(args.duration)}s",
            "--latency",
            "--timeout",
            "5s",
            "-s",
            str(ROOT / "bench" / "soak.lua"),
            base,
        ]
        wrk = subprocess.Popen(wrk_cmd, env=wrk_env, stdout=subprocess.PIPE, text=True)
        samples = [sample(proc.pid, 0.0)]
        events: list[FaultEvent] = []
        mongo_names = [t.name for t in targets if t.kind == "mongo"]
        http_names = [t.name for t in targets if t.kind != "mongo"]
        plan: list[tuple[float, str, int]] = [
            (s, "fault", k)
            for k, s in enumerate(
                fault_starts(args.duration, args.warmup, args.cycle, args.fault, args.tail)
            )
        ]
        plan += [(s + args.fault, "restore", k) for s, _, k in list(plan)]
        plan += [(float(s), "sample", 0) for s in range(5, int(args.duration) + 1, 5)]
        plan.sort()
        active: dict[int, list[tuple[str, PortState, tuple[int, ...] | None, str, float]]] = {}
        for at_s, what, cycle in plan:
            delay = at_s - (time.monotonic() - t0)
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic() - t0
            if what == "sample":
                samples.append(sample(proc.pid, now))
            elif what == "fault":
                faults = cycle_faults(cycle, mongo_names, http_names)
                set_all((by_name[n], state, members) for n, state, members, _ in faults)
                active[cycle] = [(*f, now) for f in faults]
                print(
                    f"soak: {now:6.1f}s cycle {cycle}: "
                    + "; ".join(f"{n} {how}" for n, _, _, how in faults),
                    file=sys.stderr,
                )
            else:
                faults_now = active.pop(cycle)
                set_all((by_name[n], "up", members) for n, _, members, _, _ in faults_now)
                end = time.monotonic() - t0
                for name, _, _, how, start in faults_now:
                    events.append(FaultEvent(name, how, start, end, ids_by_target[name]))
        wrk_out, _ = wrk.communicate(timeout=60)
        end_s = time.monotonic() - t0
        samples.append(sample(proc.pid, end_s))
        # Recovery: every probe GREEN again (waiting up to --recover-wait more seconds).
        recovered_in_time = wait_all_green(poller, args.recover_wait)
        poller.stop.set()
        poll_thread.join(30)
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(timeout=30)
        log_text = log_path.read_text(errors="replace")
        last_restore = max((e.end_s for e in events), default=0.0)
        return analyse(
            started=started,
            pinned=pinned,
            nice=nice,
            args=args,
            events=events,
            poller=poller,
            samples=samples,
            wrk=parse_wrk(wrk_out),
            ready_s=ready_s,
            baseline_green=baseline_green,
            end_s=end_s,
            last_restore_s=last_restore,
            recovered_in_time=recovered_in_time,
            log_text=log_text,
            exit_code=exit_code,
            ids_by_target=ids_by_target,
            workdir=workdir,
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        set_all((t, "up", None) for t in targets if any(p.state != "up" for p in t.ports))
        for target in targets:
            target.close()


def analyse(
    *,
    started: str,
    pinned: bool,
    nice: int,
    args: argparse.Namespace,
    events: Sequence[FaultEvent],
    poller: Poller,
    samples: Sequence[Sample],
    wrk: Mapping[str, float],
    ready_s: float,
    baseline_green: bool,
    end_s: float,
    last_restore_s: float,
    recovered_in_time: bool,
    log_text: str,
    exit_code: int,
    ids_by_target: Mapping[str, Sequence[str]],
    workdir: Path,
) -> dict[str, Any]:
    """Every figure of the report, from what was recorded."""
    grace_s = args.grace
    obs = poller.obs
    by_how: dict[str, dict[str, Any]] = {}
    for event in events:
        row = by_how.setdefault(event.how, {"events": 0, "expected": 0, "seen": 0, "rec": []})
        row["events"] += 1
        row["expected"] += len(event.ids)
        row["seen"] += red_seen(obs, event, grace_s)
        row["rec"].append(event_recovery_s(obs, event))
    recovery_s, not_green = final_recovery(obs, last_restore_s)
    in_fault = [ms for t, ms in poller.latencies if any(e.start_s <= t <= e.end_s for e in events)]
    quiet = [ms for t, ms in poller.latencies if not any(e.start_s <= t <= e.end_s for e in events)]
    cpu_core = (samples[-1].cpu_s - samples[0].cpu_s) / max(1e-9, samples[-1].t_s - samples[0].t_s)
    errors = [line for line in log_text.splitlines() if " ERROR " in line or "Traceback" in line]
    pauses = gc_pauses(log_text)
    return {
        "started": started,
        "nice": nice,
        "pinned": pinned,
        "machine": machine(),
        "args": vars(args),
        "specs": sum(len(v) for v in ids_by_target.values()),
        "targets": {name: len(v) for name, v in ids_by_target.items()},
        "ready_s": ready_s,
        "baseline_green": baseline_green,
        "duration_s": end_s,
        "wrk": dict(wrk),
        "poller": {
            "puts": poller.puts,
            "non200": len(poller.non200),
            "non200_examples": poller.non200[:5],
            "p50_quiet_ms": percentile(quiet, 0.5),
            "p99_quiet_ms": percentile(quiet, 0.99),
            "p50_fault_ms": percentile(in_fault, 0.5),
            "p99_fault_ms": percentile(in_fault, 0.99),
            "livez_checks": poller.livez_checks,
            "livez_failed": poller.livez_failed,
        },
        "samples": [vars(s) for s in samples],
        "cpu_core": cpu_core,
        "faults": {
            how: {
                "events": row["events"],
                "expected_red": row["expected"],
                "red_seen": row["seen"],
                "recovery_median_s": statistics.median([r for r in row["rec"] if r is not None])
                if any(r is not None for r in row["rec"])
                else None,
                "recovery_max_s": None
                if any(r is None for r in row["rec"])
                else max(row["rec"], default=0.0),
            }
            for how, row in by_how.items()
        },
        "unexpected_non_green": unexpected_non_green(obs, events, grace_s, after_s=0.0),
        "last_restore_s": last_restore_s,
        "recovered": not not_green and recovered_in_time,
        "recovery_after_last_fault_s": recovery_s,
        "not_green": not_green,
        "gc_pauses": len(pauses),
        "gc_max_ms": max((ms for _, ms, _ in pauses), default=0.0),
        "gc_over_10ms": sum(ms >= 10 for _, ms, _ in pauses),
        "log_errors": len(errors),
        "log_error_examples": errors[:5],
        "exit_code": exit_code,
        "workdir": str(workdir),
    }


# Report --------------------------------------------------------------------------------


def row_samples(samples: Sequence[Sample], every_s: float) -> list[Sample]:
    """The sample nearest each multiple of `every_s`, and the last one (no repeats)."""
    marks = []
    for k in range(int(samples[-1].t_s // every_s) + 1):
        nearest = min(samples, key=lambda s: abs(s.t_s - k * every_s))
        if nearest not in marks:
            marks.append(nearest)
    if samples[-1] not in marks:
        if samples[-1].t_s - marks[-1].t_s < 1.0:
            marks[-1] = samples[-1]
        else:
            marks.append(samples[-1])
    return marks


def mib(value: float) -> str:
    return f"{value / 2**20:.1f}"


def report(r: Mapping[str, Any], command: str) -> str:
    """The soak section of docs/reliability.md."""
    w = r["wrk"]
    p = r["poller"]
    samples = [Sample(**s) for s in r["samples"]]
    rows_every = r["args"]["row_every"]
    marks = row_samples(samples, rows_every)
    rss_rows = []
    prev: Sample | None = None
    for s in marks:
        cpu = "" if prev is None else f"{(s.cpu_s - prev.cpu_s) / (s.t_s - prev.t_s) * 100:.0f} %"
        rss_rows.append([f"{s.t_s:.0f}", mib(s.rss), cpu, str(s.fds), f"{s.load1:.1f}"])
        prev = s
    start, end = samples[0], samples[-1]
    half = min(samples, key=lambda s: abs(s.t_s - end.t_s / 2))
    total_answers = int(w["ok"] + w["non200"])
    socket_errors = int(w["connect"] + w["read"] + w["write"] + w["timeout"])
    fault_rows = [
        [
            how,
            str(f["events"]),
            f"{f['red_seen']} / {f['expected_red']}",
            "-" if f["recovery_median_s"] is None else f"{f['recovery_median_s']:.1f}",
            "not all" if f["recovery_max_s"] is None else f"{f['recovery_max_s']:.1f}",
        ]
        for how, f in r["faults"].items()
    ]
    all_red = all(f["red_seen"] == f["expected_red"] for f in r["faults"].values())
    non200 = int(w["non200"]) + p["non200"]
    growth = end.rss - start.rss
    late_growth = end.rss - half.rss
    recovered = r["recovered"]
    rec_s = r["recovery_after_last_fault_s"]
    a = r["args"]
    verdicts = [
        [
            "zero non-200 answers for known ids",
            f"{total_answers:,} wrk answers, {int(w['non200'])} non-200, {socket_errors} socket "
            f"errors; poller {p['puts']:,} PUTs, {p['non200']} non-200",
            "**met**" if non200 == 0 and socket_errors == 0 else "**not met**",
        ],
        [
            "memory flat",
            f"RSS {mib(start.rss)} MiB at start, {mib(end.rss)} MiB at the end "
            f"({growth / 2**20:+.1f} MiB); {late_growth / 2**20:+.1f} MiB over the second half",
            "**met**" if late_growth < 0.05 * end.rss else "**not met**: grows",
        ],
        [
            "every probe recovered at the end",
            f"all {r['specs']} GREEN {rec_s:.1f} s after the last fault ended"
            if recovered and rec_s is not None
            else f"not GREEN: {', '.join(r['not_green'][:10])}",
            "**met**" if recovered else "**not met**",
        ],
        [
            "the faults really happened",
            f"{sum(f['red_seen'] for f in r['faults'].values())} of "
            f"{sum(f['expected_red'] for f in r['faults'].values())} expected RED seen",
            "**yes**" if all_red and r["faults"] else "**partly**",
        ],
        [
            "other probes unaffected",
            f"{r['unexpected_non_green']} non-GREEN observations of probes whose target was "
            f"up (outside a fault + {a['grace']:g} s)",
            "**met**" if r["unexpected_non_green"] == 0 else "**not met**",
        ],
        [
            "the service stays up",
            f"/livez {p['livez_checks'] - p['livez_failed']}/{p['livez_checks']} OK; "
            f"{r['log_errors']} ERROR lines or tracebacks in its log; exit code "
            f"{r['exit_code']} on SIGTERM",
            "**met**"
            if p["livez_failed"] == 0 and r["log_errors"] == 0 and r["exit_code"] == 0
            else "**not met**",
        ],
    ]
    minutes = r["duration_s"] / 60
    length = f"{minutes:.0f} minutes" if minutes >= 1 else f"{r['duration_s']:.0f} s"
    text = f"""## Soak: {length} under load while targets fail

Measured {r["started"]} UTC by:

```
{command}
```

{r["specs"]} specs against {len(r["targets"])} simulated targets on 127.0.0.1
({", ".join(f"{k}: {v}" for k, v in r["targets"].items())} specs; every spec
`interval: {a["interval"]}`, `timeout: {a["timeout"]}`). From t = {a["warmup"]:g} s,
every {a["cycle"]:g} s: one replica set stops (connection refused), the next hangs (accepts TCP,
never answers), a third loses one secondary, and one HTTP API (Prometheus, Alertmanager or the
CI APIs, in turn) hangs or stops; {a["fault"]:g} s later they come back. The last fault ends at
t = {r["last_restore_s"]:.0f} s. wrk (`-t1 -c{a["connections"]}`, each connection pausing
{a["delay_ms"]} ms) PUTs every known id in turn for the whole run; a poller PUTs each id once
a second to follow its colour and GETs `/livez`. zeroprobe runs with default settings (INFO
logging, the contexts folder watched) but for access control, on as in production
(`ZEROPROBE_AUTH_TOKEN`): every PUT carries the bearer token. Ready after {
        r["ready_s"]:.1f} s; every probe
GREEN before the load: {"yes" if r["baseline_green"] else "no"}. Every process of the run
(zeroprobe, wrk, the targets and the poller) ran at nice {r["nice"]} (`--nice`), so that other
work on the shared machine does not preempt it{
        "; zeroprobe ran alone on one core, the rest on the other (`--pin`)" if r["pinned"] else ""
    }.

{table(["", ""], [list(row) for row in r["machine"]])}

### Verdicts

{table(["requirement", "measured", "verdict"], verdicts)}

### PUT answers

{
        table(
            [
                "client",
                "answers",
                "non-200",
                "socket errors",
                "rate (req/s)",
                "p50 (ms)",
                "p99 (ms)",
                "p99.9 (ms)",
                "max (ms)",
            ],
            [
                [
                    "wrk (whole run)",
                    f"{total_answers:,}",
                    str(int(w["non200"])),
                    str(socket_errors),
                    f"{w['requests'] / (w['duration_us'] / 1e6):,.0f}",
                    f"{w['p50_us'] / 1000:.2f}",
                    f"{w['p99_us'] / 1000:.2f}",
                    f"{w['p999_us'] / 1000:.2f}",
                    f"{w['max_us'] / 1000:.1f}",
                ],
                [
                    "poller, while a fault is on",
                    "",
                    "",
                    "",
                    "",
                    f"{p['p50_fault_ms']:.2f}",
                    f"{p['p99_fault_ms']:.2f}",
                    "",
                    "",
                ],
                [
                    "poller, no fault on",
                    f"{p['puts']:,} (both rows)",
                    str(p["non200"]),
                    "",
                    "",
                    f"{p['p50_quiet_ms']:.2f}",
                    f"{p['p99_quiet_ms']:.2f}",
                    "",
                    "",
                ],
            ],
        )
    }

The poller is a Python client sharing its process with the simulated targets, so its
latencies include its own scheduling; it is there to compare fault and no-fault periods.

### Faults

{
        table(
            [
                "fault",
                "times",
                "RED seen / expected (probe × fault)",
                "back to GREEN after it ended: median (s)",
                "max (s)",
            ],
            fault_rows,
        )
    }

RED counts when the poller saw it between the start of the fault and {a["grace"]:g} s after its end.

### Memory, CPU and file descriptors of the zeroprobe process

{
        table(
            [
                "t (s)",
                "RSS (MiB)",
                "CPU since the previous row (of one core)",
                "open fds",
                "load average (1 min)",
            ],
            rss_rows,
        )
    }

Whole run: {r["cpu_core"] * 100:.0f} % of one core (its CPU seconds over the whole run divided by
the run's wall time; each row above likewise over the minute before it). Garbage collections
of the server taking 5 ms or more (`bench/gc_trace.py`; each stops the event loop):
{r["gc_pauses"]}, of which
{r["gc_over_10ms"]} took 10 ms or more; the longest {r["gc_max_ms"]:.0f} ms.
"""
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--sets", type=int, default=6, help="simulated replica sets")
    parser.add_argument("--specs-per-set", type=int, default=15)
    parser.add_argument("--http-specs", type=int, default=3, help="specs per HTTP API")
    parser.add_argument("--interval", default="5s")
    parser.add_argument("--timeout", default="3s")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before the 1st fault")
    parser.add_argument("--cycle", type=float, default=30.0, help="seconds between faults")
    parser.add_argument("--fault", type=float, default=15.0, help="seconds a fault lasts")
    parser.add_argument("--tail", type=float, default=60.0, help="quiet seconds at the end")
    parser.add_argument("--grace", type=float, default=12.0, help="seconds to see RED / recover")
    parser.add_argument("--recover-wait", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--delay-ms", type=int, default=4, help="each wrk connection's pause")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between colour polls")
    parser.add_argument("--row-every", type=int, default=60, help="seconds per table row")
    parser.add_argument("--nice", type=int, default=-10, help="nice value of every process")
    parser.add_argument(
        "--pin", action=argparse.BooleanOptionalAction, default=True, help="zeroprobe on a core"
    )
    parser.add_argument("--out", default=str(DOC), help="markdown file to update")
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--workdir", help="specs and the zeroprobe log (default: a new temp dir)")
    args = parser.parse_args(argv)
    command = "python -m bench.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    result = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    write_section(Path(args.out), "soak", report(result, command.strip()))
    print(f"soak: wrote {args.out} (raw log in {result['workdir']})", file=sys.stderr)
    print(json.dumps({k: result[k] for k in ("wrk", "poller", "recovered", "faults")}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
