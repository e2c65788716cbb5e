"""1,000 probes failing at the same moment must not delay PUT answers (p99 under 10 ms).

python -m bench.failing_burst            # 1,000 specs; rewrites the burst section of
                                         # docs/reliability.md
python -m bench.failing_burst --specs 50 --interval 6s --timeout 5s --out F   # smoke sizes

`--specs` prometheus_query specs share `--targets` simulated Prometheus servers on 127.0.0.1
(bench/targets.py), all with the same interval, so their runs start within the same few
seconds of every interval. Once every probe is GREEN:

1. *hang*: just before the runs' next start, every target stops answering (it accepts TCP
   and never replies), so every probe's run is left waiting on its target;
2. *burst*: a few seconds later, with every run in flight, every target drops all its
   connections at once and refuses new ones: every waiting run fails at the same moment;
3. *refused*: the targets stay down for a while (each run fails at once), then come back.

A separate client process PUTs known ids at a fixed rate all along (open loop: each
request's latency counts from when it was due, so a stalled server cannot hide behind a
client that waits for it) and records every answer; the report gives p50 / p99 / max and the
non-200 count of each phase. py-spy (the `bench` extra) samples the server during the burst
(`--no-profile`: not).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import PYTHON, ROOT, free_port, machine, stop
from bench.soak import (
    DOC,
    gc_pauses,
    percentile,
    pin_apart,
    raise_priority,
    start_zeroprobe,
    table,
    wait_ready,
    write_section,
)
from bench.targets import Target, http_target, set_all, steady_prometheus_app
from schemas.durations import parse_duration_s

SPEC = """service_id: {sid}
kind: prometheus_query
description: Burst query {index}
connection: {label}
interval: {interval}
timeout: {timeout}
query: sum(rate(http_requests_total{{code=~"5.."}}[5m])) / sum(rate(http_requests_total[5m]))
thresholds: {{yellow: 0.01, red: 0.05}}
"""

# Pure helpers (tested) -----------------------------------------------------------------


def cluster_start(phases_s: Sequence[float], interval_s: float) -> tuple[float, float]:
    """Where, in an interval, runs start: (offset of the first start, length of the cluster),
    from each probe's start time modulo the interval (the cluster may wrap around)."""
    ordered = sorted(p % interval_s for p in phases_s)
    if not ordered:
        return 0.0, 0.0
    gaps = [
        ((ordered[(i + 1) % len(ordered)] - ordered[i]) % interval_s, i)
        for i in range(len(ordered))
    ]
    widest, before = max(gaps)
    first = ordered[(before + 1) % len(ordered)]
    return first, interval_s - widest if len(ordered) > 1 else 0.0


def next_at(offset_s: float, interval_s: float, not_before_s: float) -> float:
    """The first time t >= not_before_s with t = offset_s (mod interval_s)."""
    k = -(-(not_before_s - offset_s) // interval_s)
    return offset_s + k * interval_s


#: What a sample of the server was doing, by the first frame that matches (stack outermost
#: first, so a probe run's logging counts as logging, not as the run).
PROFILE_CATEGORIES = (
    ("waiting for events (epoll)", ("EpollSelector.select",)),
    ("logging a probe's change of colour", ("Logger.",)),
    ("redacting secrets from error texts", ("Redactor.", "RedactingFilter.")),
    (
        "probe runs' requests to the targets (connect attempts, failures)",
        ("aiohappyeyeballs", "Connector.", "ClientSession.", "sock_connect", "HttpClient."),
    ),
    ("the rest of probe runs (result, grade, metrics)", ("ProbeRunner.", "Engine._run_job")),
    ("answering HTTP requests", ("RequestHandler.", "web_protocol", "DeadlineRequestHandler")),
)


def profile_shares(raw: str) -> list[tuple[str, int]]:
    """Samples per category of a py-spy raw (collapsed stacks) profile, busiest first."""
    counts: dict[str, int] = {}
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        name = next(
            (
                label
                for label, keys in PROFILE_CATEGORIES
                if any(key in frame for frame in frames for key in keys)
            ),
            "other (asyncio, aiohttp internals)",
        )
        counts[name] = counts.get(name, 0) + int(count)
    return sorted(counts.items(), key=lambda kv: -kv[1])


def window_stats(
    records: Sequence[Sequence[float]], start_s: float, end_s: float
) -> dict[str, float]:
    """p50 / p99 / max latency (ms) and counts of the requests due in [start_s, end_s);
    a record is (due, zeroprobe ms, zeroprobe status, control ms)."""
    inside = [r for r in records if start_s <= r[0] < end_s]
    latencies = [r[1] for r in inside]
    control = [r[3] for r in inside]
    return {
        "requests": len(inside),
        "non200": sum(r[2] != 200 for r in inside),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
        "control_p99_ms": percentile(control, 0.99),
        "control_max_ms": max(control, default=float("nan")),
    }


def gc_stats(
    pauses: Sequence[tuple[int, float, float]], start_s: float, end_s: float
) -> dict[str, float]:
    """How many of the server's collections (gen, ms, at) fell in [start_s, end_s), the
    longest."""
    inside = [ms for _, ms, at in pauses if start_s <= at < end_s]
    return {"gc_pauses": len(inside), "gc_max_ms": max(inside, default=0.0)}


# The measuring client (a child process) ------------------------------------------------


async def client(
    base: str, control: str, ids: Sequence[str], rate: float, duration_s: float, *, token: str = ""
) -> list[Any]:
    """PUT `ids` in turn at `rate` per second for `duration_s`, each to zeroprobe and to the
    control (a bare aiohttp app) at once: (due, zeroprobe ms, its status, control ms)."""
    records: list[Any] = []
    connector = aiohttp.TCPConnector(limit=64)
    # A request unanswered for 10 s counts as failed (status 0) rather than holding the run.
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        async def put(url: str, due: float) -> tuple[float, int]:
            try:
                async with session.put(url, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, OSError):
                status = 0
            return (time.monotonic() - due) * 1000, status

        async def one(due: float, service_id: str) -> None:
            (zp_ms, status), (bare_ms, _) = await asyncio.gather(
                put(f"{base}/{service_id}", due), put(f"{control}/{service_id}", due)
            )
            records.append((due, zp_ms, status, bare_ms))

        tasks = set()
        start = time.monotonic() + 0.2
        count = int(rate * duration_s)
        for index in range(count):
            due = start + index / rate
            pause = due - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            task = asyncio.create_task(one(due, ids[index % len(ids)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return records


def run_client(args: argparse.Namespace) -> int:
    ids = Path(args.ids).read_text().split()
    records = asyncio.run(
        client(
            args.base,
            args.control,
            ids,
            args.rate,
            args.client_duration,
            token=os.environ.get("BURST_TOKEN", ""),
        )
    )
    Path(args.client_out).write_text(json.dumps(records))
    return 0


# The burst -----------------------------------------------------------------------------


#: The access token of the server under test (set by run()); sent with every request.
TOKEN: list[str] = [""]


def get_json(conn: http.client.HTTPConnection, method: str, path: str) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN[0]}"} if TOKEN[0] else {}
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise OSError(f"{method} {path}: HTTP {response.status}")
    return json.loads(body)


def put_raw(base: str, service_id: str) -> Any:
    """One PUT's document, parsed."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        return get_json(conn, "PUT", f"/{service_id}")
    finally:
        conn.close()


def put_documents(base: str, ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    """status and timestamp (epoch ms) of each id's document (one keep-alive connection)."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    got = {}
    try:
        for service_id in ids:
            doc = get_json(conn, "PUT", f"/{service_id}")[service_id]
            got[service_id] = (str(doc["status"]), int(doc["timestamp"]))
    finally:
        conn.close()
    return got


def first_red_after(base: str, ids: Sequence[str], since_ms: float) -> list[int]:
    """For each id, when its first RED result at or after `since_ms` was collected (epoch
    ms), from the JSON API's history; ids without one are left out."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    found = []
    try:
        for service_id in ids:
            history = get_json(conn, "GET", f"/api/v1/results/{service_id}/history")["results"]
            red = [
                h["collected_at_ms"]
                for h in history
                if h["status"] == "RED" and h["collected_at_ms"] >= since_ms
            ]
            if red:
                found.append(int(min(red)))
    finally:
        conn.close()
    return sorted(found)


def wait_put(url: str) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def wait_all(base: str, ids: Sequence[str], status: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if all(s == status for s, _ in put_documents(base, ids).values()):
                return True
        except OSError:
            pass
        time.sleep(1)
    return False


def run(args: argparse.Namespace) -> dict[str, Any]:
    interval_s = parse_duration_s(args.interval)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="zeroprobe-burst-"))
    workdir.mkdir(parents=True, exist_ok=True)
    nice = raise_priority(args.nice)
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    targets: list[Target] = [
        http_target(f"prom{i}", "prometheus", steady_prometheus_app) for i in range(args.targets)
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        folder = workdir / "contexts"
        folder.mkdir()
        ids = []
        for index in range(args.specs):
            sid = f"burst.q{index:04d}"
            label = targets[index % len(targets)].name
            text = SPEC.format(
                sid=sid, index=index, label=label, interval=args.interval, timeout=args.timeout
            )
            (folder / f"{sid}.yaml").write_text(text)
            ids.append(sid)
        (workdir / "ids.txt").write_text("\n".join(ids) + "\n")
        port = free_port()
        TOKEN[0] = secrets.token_urlsafe(24)
        server, log_path = start_zeroprobe(
            workdir, folder, port, TOKEN[0], {t.name: t.url for t in targets}
        )
        procs.append(server)
        # zeroprobe alone on one core; this process, and the control and the client started
        # from it below, on the other: the control then shows what the machine does to the
        # client, not what zeroprobe's own work does to it.
        pinned = args.pin and pin_apart(server.pid)
        base = f"http://127.0.0.1:{port}"
        wait_ready(server, f"{base}/readyz", log_path, 120)
        if not wait_all(base, ids, "GREEN", 60):
            raise RuntimeError("the probes did not all turn GREEN")
        # Where in each interval the runs start (a document's timestamp is its run's end,
        # a few ms after the start against a healthy target).
        docs = put_documents(base, ids)
        offset_s, spread_s = cluster_start([ts / 1000 for _, ts in docs.values()], interval_s)
        if spread_s + 2 > interval_s / 2:
            # Fine for a smoke run; a real one wants every run in flight at the release.
            print(
                f"failing_burst: runs start over {spread_s:.1f} s of a {interval_s:g} s "
                "interval: not every run will be in flight at the release",
                file=sys.stderr,
            )
        now_wall = time.time()
        cluster_wall = next_at(offset_s, interval_s, now_wall + args.before + 1.5)
        onset_wall = cluster_wall - 1.5
        release_wall = cluster_wall + spread_s + args.hold
        restore_wall = release_wall + args.refused
        end_wall = restore_wall + interval_s + 5
        # The client runs from now to the end; its clock is time.monotonic(), shared by every
        # process of the machine, so translate the wall-clock plan into it.
        mono = time.monotonic() - time.time()
        client_out = workdir / "client.json"
        # The control: a bare aiohttp app answering the same bytes, measured by the same
        # client at the same moments; what slows it too is the machine, not zeroprobe.
        body_file = workdir / "document.json"
        body_file.write_text(json.dumps(put_raw(base, ids[0])))
        control_port = free_port()
        control_args = ["--port", str(control_port), "--body", str(body_file)]
        procs.append(subprocess.Popen([PYTHON, "-m", "bench.bare_app", *control_args], cwd=ROOT))
        control = f"http://127.0.0.1:{control_port}"
        wait_put(control + "/x")
        client_args = [
            PYTHON,
            "-m",
            "bench.failing_burst",
            "--client",
            "--base",
            base,
            "--control",
            control,
            "--ids",
            str(workdir / "ids.txt"),
            "--rate",
            str(args.rate),
            "--client-duration",
            str(end_wall - time.time()),
            "--client-out",
            str(client_out),
        ]
        client_proc = subprocess.Popen(
            client_args, cwd=ROOT, env={**os.environ, "BURST_TOKEN": TOKEN[0]}
        )
        procs.append(client_proc)
        time.sleep(max(0.0, onset_wall - time.time()))
        onset = time.monotonic()
        set_all((t, "hang", None) for t in targets)
        time.sleep(max(0.0, release_wall - time.time()))
        load1_before = os.getloadavg()[0]
        held = sum(p.hang.held for t in targets for p in t.ports if p.hang is not None)
        profiler = None
        # py-spy comes with the `bench` extra, next to this interpreter.
        spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
        profile_path = workdir / "burst-profile.txt"
        if args.profile and Path(spy).exists():
            profiler = subprocess.Popen(
                [
                    spy,
                    "record",
                    "-p",
                    str(server.pid),
                    "-d",
                    "1",
                    "-r",
                    "1000",
                    "-f",
                    "raw",
                    "-o",
                    str(profile_path),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.3)  # py-spy attaches; the profile then covers the burst
        release = time.monotonic()
        release_took_s = set_all((t, "down", None) for t in targets)
        time.sleep(max(0.0, restore_wall - time.time()))
        restore = time.monotonic()
        set_all((t, "up", None) for t in targets)
        # Nothing but the client talks to zeroprobe until it is done; then the checks.
        client_proc.wait(timeout=max(60.0, end_wall - time.time() + 60))
        release_ms = (release - mono) * 1000
        red_ms = first_red_after(base, ids, release_ms)
        recovered = wait_all(base, ids, "GREEN", interval_s + 10)
        shares: list[tuple[str, int]] = []
        if profiler is not None:
            profiler.wait(timeout=30)
            if profile_path.exists():
                shares = profile_shares(profile_path.read_text())
        records = [tuple(r) for r in json.loads(client_out.read_text())]
        log_text = log_path.read_text(errors="replace")
        pauses = gc_pauses(log_text)
        return {
            "started": started,
            "nice": nice,
            "pinned": pinned,
            "profile": shares,
            "machine": machine(),
            "specs": args.specs,
            "targets": args.targets,
            "interval": args.interval,
            "timeout": args.timeout,
            "rate": args.rate,
            "runs_start_spread_s": spread_s,
            "held_connections": held,
            "release_took_s": release_took_s,
            "red_after_release": len(red_ms),
            "red_spread_ms": (red_ms[-1] - red_ms[0]) if red_ms else None,
            "red_last_after_release_ms": (red_ms[-1] - release_ms) if red_ms else None,
            "recovered": recovered,
            "load1_before": load1_before,
            "load1_after": os.getloadavg()[0],
            "log_errors": sum(" ERROR " in line for line in log_text.splitlines()),
            "windows": {
                name: {**window_stats(records, a, b), **gc_stats(pauses, a, b)}
                for name, a, b in (
                    ("before (all GREEN)", onset - args.before, onset),
                    ("targets hang, runs pile up", onset, release),
                    (
                        f"burst: first {args.burst_window:g} s after the release",
                        release,
                        release + args.burst_window,
                    ),
                    ("targets refuse", release + args.burst_window, restore),
                    ("targets back", restore, float("inf")),
                )
            },
            "times_s": {"onset": onset, "release": release, "restore": restore},
            "workdir": str(workdir),
        }
    finally:
        for proc in procs:
            stop(proc, grace_s=10)
        for target in targets:
            target.close()


def profile_text(shares: Sequence[Sequence[Any]]) -> str:
    """The profile's table, or a note that there is none."""
    if not shares:
        return "_No profile of the burst (py-spy is not installed, or `--no-profile`)._"
    total = sum(int(count) for _, count in shares)
    rows = [[str(name), f"{int(count) / total:.0%}"] for name, count in shares]
    return (
        "What the server did during the second of the burst (py-spy at 1,000 samples a second; "
        f"it keeps {total:,}, dropping most idle ones):\n\n"
        + table(["doing", "share of samples"], rows)
    )


def window_row(name: str, w: Mapping[str, Any], *, control_max: bool = False) -> list[str]:
    """One window of the burst as a table row (the control's max only where asked)."""
    return [
        name,
        f"{w['requests']:,}",
        str(w["non200"]),
        f"{w['p50_ms']:.2f}",
        f"**{w['p99_ms']:.2f}**",
        f"{w['max_ms']:.1f}",
        f"{w['control_p99_ms']:.2f}",
        *([f"{w['control_max_ms']:.1f}"] if control_max else []),
        f"{w['gc_pauses']} ({w['gc_max_ms']:.0f})" if w["gc_pauses"] else "0",
    ]


def report(r: Mapping[str, Any], command: str) -> str:
    """The burst section of docs/reliability.md."""
    rows = [window_row(name, w, control_max=True) for name, w in r["windows"].items()]
    burst = next(w for name, w in r["windows"].items() if name.startswith("burst"))
    worst_p99 = max(w["p99_ms"] for w in r["windows"].values())
    non200 = sum(w["non200"] for w in r["windows"].values())
    met = worst_p99 < 10 and non200 == 0
    spread = r["red_spread_ms"]
    return f"""## 1,000 probes failing at the same moment

Measured {r["started"]} UTC by:

```
{command}
```

{r["specs"]:,} `prometheus_query` specs (`interval: {r["interval"]}`, `timeout: {r["timeout"]}`)
share {r["targets"]} simulated Prometheus servers on 127.0.0.1; their runs start within the
same {r["runs_start_spread_s"]:.1f} s of every interval. Just before the runs' next start
every target stops answering (accepts TCP, never replies); once every run is waiting on it
({r["held_connections"]} connections held by the targets, the rest queued in zeroprobe's
connection pool), every target drops all its connections and refuses new ones. Then
{r["red_after_release"]:,} probes turned RED within {"-" if spread is None else f"{spread:,.0f}"} ms
of each other (the last {
        "-" if r["red_last_after_release_ms"] is None else f"{r['red_last_after_release_ms']:,.0f}"
    } ms after the release). A separate client
process PUTs known ids at {r["rate"]:g} per second all along, open loop (latency counts from
when a request was due), and at the same moments the same PUTs to a control: a bare aiohttp
app answering the same bytes (`bench/bare_app.py`). What slows the control too is the machine
(the client, other processes on the 2 cores), not zeroprobe. zeroprobe runs with default
settings (INFO logging, the contexts folder watched) but for access control, on as in
production (`ZEROPROBE_AUTH_TOKEN`): every request carries the bearer token. Every process of
the run (zeroprobe, the control, the client, the targets) ran at nice {r["nice"]} (`--nice`),
so that other work on the shared machine does not preempt it.{
        " zeroprobe ran alone on one core, the rest on the other (`--pin`)." if r["pinned"] else ""
    }

{
        table(
            [
                "phase",
                "PUTs",
                "non-200",
                "p50 (ms)",
                "p99 (ms)",
                "max (ms)",
                "control p99 (ms)",
                "control max (ms)",
                "server GC pauses ≥ 5 ms (longest ms)",
            ],
            rows,
        )
    }

**Verdict: {"met" if met else "not met"}** (target: p99 < 10 ms in every phase, no non-200):
worst phase p99 {worst_p99:.2f} ms, burst p99 {burst["p99_ms"]:.2f} ms, {non200} non-200.
Every probe GREEN again after the targets came back: {"yes" if r["recovered"] else "no"};
{r["log_errors"]} ERROR lines in the server's log. Load average (1 min) of the 2-core machine
just before the release {r["load1_before"]:.1f}, at the end {r["load1_after"]:.1f}.

{profile_text(r["profile"])}

{table(["", ""], [list(row) for row in r["machine"]])}
"""


#: The bench.main section's run: 1,000 specs, but a shorter interval and phases than the
#: reliability run (`make soak`), and a rate the measuring client keeps up with when other
#: work shares the 2 cores (at 300/s on a busy machine the control's p99 was 250-400 ms: the
#: client, not the servers, was measured).
SECTION_ARGS = ("--interval", "20s", "--timeout", "15s", "--before", "8", "--refused", "5")
SECTION_RATE = 100
#: The smoke sizes of `--tiny`.
TINY_ARGS: tuple[str, ...] = ("--specs", "50", "--interval", "6s", "--timeout", "5s")
TINY_ARGS += ("--before", "3", "--refused", "2", "--no-profile")
#: PUT p99 during the burst that issue 16 asks for.
BURST_P99_TARGET_MS = 5.0


def bench_section(tiny: bool) -> str:
    """The "burst" section of docs/benchmarks.md: one run in a child process (it pins and
    renices itself), PUT latency before the targets fail (the baseline of the same run) and
    in the burst, the control alongside, and what the profile of the burst shows."""
    extra = TINY_ARGS if tiny else SECTION_ARGS
    args = [*extra, "--rate", str(SECTION_RATE)]
    with tempfile.TemporaryDirectory(prefix="zeroprobe-burst-section-") as tmp:
        raw, out = Path(tmp) / "burst.json", Path(tmp) / "reliability.md"
        subprocess.run(
            [PYTHON, "-m", "bench.failing_burst", *args, "--json", str(raw), "--out", str(out)],
            check=True,
            cwd=ROOT,
            timeout=900,
            stdout=subprocess.DEVNULL,
        )
        r = json.loads(raw.read_text())
    windows = r["windows"]
    before = next(w for name, w in windows.items() if name.startswith("before"))
    burst_name, burst = next((n, w) for n, w in windows.items() if n.startswith("burst"))
    rows = [
        window_row(name, w)
        for name, w in (("before (all GREEN): the baseline", before), (burst_name, burst))
    ]
    head = [
        "phase",
        "PUTs",
        "non-200",
        "p50 (ms)",
        "p99 (ms)",
        "max (ms)",
        "control p99 (ms)",
        "server GC pauses ≥ 5 ms (longest ms)",
    ]
    over = burst["p99_ms"] - BURST_P99_TARGET_MS
    verdict = (
        f"**Target (burst p99 ≤ {BURST_P99_TARGET_MS:g} ms): "
        + ("met**" if over <= 0 else f"missed by {over:.2f} ms**")
        + f"; the baseline p99 of the same run {before['p99_ms']:.2f} ms, the control's "
        f"{burst['control_p99_ms']:.2f} ms during the burst (what the machine itself adds). "
        f"{r['red_after_release']:,} probes turned RED, the last "
        f"{r['red_last_after_release_ms'] or 0:,.0f} ms after the release; load average "
        f"(1 min) {r['load1_before']:.1f} before it."
    )
    command = "python -m bench.failing_burst " + " ".join(args)
    return (
        f"```\n{command}   # `make soak` runs the longer version into docs/reliability.md\n```"
        f"\n\n{r['specs']:,} `prometheus_query` specs on {r['targets']} simulated Prometheus "
        "servers; every target hangs just before the runs start, then drops every connection "
        "and refuses new ones, so every run fails within a few hundred ms. A client process "
        f"PUTs known ids at {r['rate']:g}/s, open loop, to zeroprobe (access control on) and "
        "to a bare aiohttp app (the control) at the same moments.\n\n"
        + table(head, rows)
        + f"\n\n{verdict}\n\n{profile_text(r['profile'])}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--specs", type=int, default=1000)
    parser.add_argument("--targets", type=int, default=2, help="simulated Prometheus servers")
    parser.add_argument("--interval", default="30s")
    parser.add_argument("--timeout", default="25s")
    parser.add_argument("--rate", type=float, default=500.0, help="PUTs per second")
    parser.add_argument("--before", type=float, default=10.0, help="seconds measured before")
    parser.add_argument("--hold", type=float, default=3.0, help="seconds every run waits")
    parser.add_argument("--refused", type=float, default=10.0, help="seconds refusing")
    parser.add_argument("--burst-window", type=float, default=2.0)
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="py-spy the server for the second of the burst (when py-spy is installed)",
    )
    parser.add_argument("--nice", type=int, default=-10, help="nice value of every process")
    parser.add_argument(
        "--pin", action=argparse.BooleanOptionalAction, default=True, help="zeroprobe on a core"
    )
    parser.add_argument("--out", default=str(DOC), help="markdown file to update")
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--workdir", help="specs, logs, profile (default: a new temp dir)")
    # The measuring client, run as a child process by the benchmark itself.
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--control", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--client-duration", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--client-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        return run_client(args)
    command = "python -m bench.failing_burst " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    result = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    write_section(Path(args.out), "burst", report(result, command.strip()))
    print(f"failing_burst: wrote {args.out} (raw log in {result['workdir']})", file=sys.stderr)
    print(json.dumps(result["windows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
