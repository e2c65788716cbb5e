"""`make bench`: run every benchmark and rewrite docs/benchmarks.md.

python -m bench.main                  # the full run (about 10 minutes on 2 cores)
python -m bench.main --tiny --out F   # the smoke run of the test suite: tiny sizes
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import cluster, failing_burst, live, metrics_scrape, notify_storm
from bench.common import PYTHON, ROOT, machine, median

Table = list[list[str]]


def table(header: Sequence[str], rows: Table) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def in_child(module: str, *args: object) -> dict[str, float]:
    out = subprocess.run(
        [PYTHON, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=600,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def startup(sizes: Sequence[int], runs: int, large: Sequence[int] = ()) -> str:
    """One row per size; `large` sizes once each, their histories not filled (minutes)."""
    rows: Table = []
    interval = 60
    cases = [(size, runs, True) for size in sizes] + [(size, 1, False) for size in large]
    for size, times, history in cases:
        extra = () if history else ("--no-history",)
        got = [in_child("bench.startup", size, interval, *extra) for _ in range(times)]
        rows.append(
            [
                f"{size:,}",
                f"{interval} s",
                f"{median([g['import_s'] for g in got]):.3f}",
                f"{median([g['load_s'] for g in got]):.3f}",
                f"**{median([g['startup_s'] for g in got]):.3f}**",
                f"{median([g['startup_cpu_s'] for g in got]):.3f}",
                f"{median([g['rss_loaded_mib'] for g in got]):,.0f}",
                f"{median([g['rss_loaded_per_probe'] for g in got]) / 1024:.1f}",
                f"{median([g['rss_per_probe'] for g in got]) / 1024:.1f}" if history else "—",
            ]
        )
    head = [
        "specs",
        "interval",
        "importing the kinds, once (s)",
        "load + validate (s)",
        "start-up: load + validate + first schedule (s)",
        "start-up CPU (s)",
        "RSS of the loaded specs (MiB)",
        "RSS per probe, no result (KiB)",
        "RSS per probe, 60 results (KiB)",
    ]
    cmd = (
        f"python -m bench.startup SPECS INTERVAL  # median of {runs} fresh processes\n"
        "python -m bench.startup 100000 60 --no-history  # once; no history filled"
    )
    return f"```\n{cmd}\n```\n\n" + table(head, rows) + "\n" + STARTUP_NOTES


STARTUP_NOTES = """
The target is the wall time of the 10,000 row (≤ 1.0 s); the machine is shared, so the CPU
seconds of the same process are given too. Importing the installed kinds' modules (plugins
included) comes first and costs the same whatever the number of specs: timed apart. Where
start-up goes (cProfile, 10,000 specs): YAML (libyaml), now parsed once per file instead of
twice, the data built straight from the nodes, the tags of repeated scalars remembered;
pydantic validation and the sharing of equal parts (`schemas/`, about a quarter); one
APScheduler `add_job` per spec, whose check of the job function's signature is now worked
out once; the file reads, now plain system calls. Measured when this was changed, this
script against the code before it (`git archive` of the previous commit), alternating, three
times each on the same machine: 10,000 specs started in 5.26-6.07 s before, 3.32-3.69 s
after (0.62x); that machine then took four times the 1.32 s of the 2026-11-22 run for the
code before. What is left is pydantic (validation and `compact`, a third of loading),
libyaml's nodes and APScheduler's per-job bookkeeping, each linear in the specs.
"""


def overhead(rounds: int, block: int) -> str:
    got: dict[str, Any] = in_child("bench.overhead", rounds, block)
    steady = ", ".join(got["commands"])
    window = ", ".join(got["window_commands"])
    two = "replSetGetStatus, replSetGetConfig"
    five = f"hello, {two}, find, find"
    cases = [
        # (probe run, its commands, baseline, what the baseline sends, bold: the target)
        ("steady", steady, "raw", f"the same: {steady}", True),
        ("steady", steady, "raw_bounded", "the same inside pymongo.timeout", False),
        ("window", window, "raw_window", f"the same: {window}", True),
        ("window", window, "raw_window_bounded", "the same inside pymongo.timeout", False),
        ("steady", steady, "raw_five", f"the previous probe's: {five}", False),
        ("window", window, "raw_five", f"the previous probe's: {five}", False),
        ("steady", steady, "raw_two", f"the first probe's: {two}", False),
    ]
    rows: Table = []
    for run, sent, baseline, sends, target in cases:
        probe = "probe" if run == "steady" else "window"
        key = baseline if run == "steady" else f"window_{baseline}"
        ratio = f"{got[f'ratio_{key}']:.2f}×"
        rows.append(
            [
                f"{run} ({sent})",
                sends,
                f"{got[f'{probe}_ms']:.3f}",
                f"{got[f'{baseline}_ms']:.3f}",
                f"**{ratio}**" if target else ratio,
                f"{got[f'{probe}_cpu_ms']:.3f}",
                f"{got[f'{baseline}_cpu_ms']:.3f}",
                f"{got[f'cpu_ratio_{key}']:.2f}×",
            ]
        )
    head = [
        "probe run (commands it sends)",
        "raw baseline sends",
        "probe (ms, median)",
        "raw (ms, median)",
        "ratio",
        "probe CPU (ms per run)",
        "raw CPU (ms per run)",
        "CPU ratio",
    ]
    cmd = f"python -m bench.overhead {rounds} {block}  # {rounds} alternating blocks of {block}"
    runs = f"{int(got['runs_each'])} runs of each, same client, same simulated replica set."
    return f"```\n{cmd}\n```\n\n{runs}\n\n" + table(head, rows) + "\n" + OVERHEAD_NOTES


OVERHEAD_NOTES = """
Bold: the target, ≤ 1.15x the same commands sent raw. A steady run now sends one command
where it sent five: the config is fetched again only when the status names another
(`configVersion`, `configTerm`, `term`), the `hello` gives way to what the driver's monitors
know of the server, and an oplog window read stands up to 1 % of the window (10 minutes at
most; README). Against the previous probe's five commands a steady run costs about a third;
against the one command it sends the target is missed. What zeroprobe adds to a run is spread
thin (cProfile, 1,000 runs: ~650 Python calls, where a raw `replSetGetStatus` makes ~800):
joining status and config into member readings and grading them, the two deadlines (the
runner's `asyncio.timeout`, and `pymongo.timeout`, under which PyMongo races each socket
write against a timer in a task of its own: the rows "inside pymongo.timeout"), the runner's
bookkeeping (the document, the store, the metrics) and scrubbing the lines, in that order of
cost.
"""


#: The access token of the "access control on" row (a benchmark value, not a secret).
BENCH_TOKEN = "bench-0123456789abcdef0123456789abcdef"


#: The request of each HTTP row: its wrk script and how the row names it.
HTTP_REQUESTS = {
    "put.lua": "PUT",
    "put_body.lua": "PUT with body `{}`",
    "get.lua": "GET",
}


def http(cases: Sequence[tuple[int, bool, str]], rounds: int, duration_s: int, conns: int) -> str:
    """One row per (probe count, access control on, wrk script) case; the paced runs only
    for the plain PUT."""
    if shutil.which("wrk") is None:
        return "_wrk is not installed: skipped (`make bench` installs it)._"
    rows: Table = []
    for probes, with_token, script in cases:
        paced = script == "put.lua"
        token = BENCH_TOKEN if with_token else ""
        got = live.http(probes, rounds, duration_s, conns, token, script=script, paced=paced)
        load = "idle (1 spec)" if probes == 0 else f"{probes:,} probes every 5 s"
        rows.append(
            [
                HTTP_REQUESTS[script],
                load + (", access control on" if with_token else ""),
                f"{got['zp_rps']:,.0f}",
                f"{got['bare_rps']:,.0f}",
                f"**{got['ratio']:.2f}×**",
                f"{got['zp_cpu_us']:.0f} / {got['bare_cpu_us']:.0f}",
                f"{got['bare_cpu_us'] / got['zp_cpu_us']:.2f}×",
                f"{got['zp_p50_ms']:.2f} / {got['zp_p99_ms']:.2f}",
                f"{got['bare_p50_ms']:.2f} / {got['bare_p99_ms']:.2f}",
                f"{got['half_rps']:,.0f}" if paced else "",
                f"{got['half_zp_p50_ms']:.2f} / {got['half_zp_p99_ms']:.2f}" if paced else "",
                f"{got['half_bare_p99_ms']:.2f}" if paced else "",
                f"{int(got['errors'])}",
            ]
        )
    head = [
        "request",
        "load",
        "zeroprobe req/s",
        "bare aiohttp req/s",
        "ratio",
        "CPU per request, zeroprobe / bare (µs)",
        "CPU ratio (bare / zeroprobe)",
        "zeroprobe p50 / p99 (ms)",
        "bare p50 / p99 (ms)",
        "paced rate (req/s)",
        "zeroprobe paced p50 / p99 (ms)",
        "bare paced p99 (ms)",
        "errors",
    ]
    cmd = (
        f"wrk -t1 -c{conns} -d{duration_s}s --latency -s bench/put.lua URL   "
        f"# {rounds} rounds, A/B order alternating\n"
        f"wrk ... -s bench/put_body.lua URL   # PUT with {{}} and Content-Type: application/json"
        " (the bare app receives it too and never reads it)\n"
        f"wrk ... -s bench/get.lua URL\n"
        f"BENCH_DELAY_MS=2 wrk -t1 -cN -d{duration_s}s --latency -s bench/put_paced.lua URL"
        "   # paced at half of zeroprobe's rate\n"
        "BENCH_TOKEN=... wrk ...   # access control on: ZEROPROBE_AUTH_TOKEN set, the token "
        "sent as a bearer header to both"
    )
    note = (
        "Ratio: the median over the rounds of zeroprobe's rate over the bare app's in the "
        "round next to it. CPU per request: each server's CPU seconds (`/proc/<pid>/stat`) "
        "over all its full-rate rounds divided by the requests it answered, steadier than "
        "the rates when other work shares the machine."
    )
    return f"```\n{cmd}\n```\n\n{note}\n\n" + table(head, rows)


#: How the scale sections run zeroprobe and measure CPU, stated above their tables.
SCALE_METHOD = (
    "`zeroprobe serve` runs as a user runs it: default settings (INFO logging, the contexts "
    "folder watched by change notification) unless a row says otherwise. It runs alone on one "
    "core (`taskset`); the simulated replica sets (`bench.sims`: MockupDB, 3 members, 4 sets) "
    "and the measuring client on the other, so their cost stays out. **CPU** is the CPU "
    "seconds (user + system, `/proc/<pid>/stat`) of the zeroprobe process over whole probe "
    "intervals, divided by the wall time they took: the mean; min and max are those of single "
    "intervals. Start jitter and probe duration come from every run in those intervals "
    "(`zeroprobe_probe_start_delay_seconds`, `zeroprobe_probe_run_duration_seconds`; bucket "
    "upper bounds, so conservative)."
)


def _cpu(got: dict[str, float]) -> str:
    return (
        f"**{got['cpu_core'] * 100:.1f} %** "
        f"({got['cpu_min'] * 100:.0f}–{got['cpu_max'] * 100:.0f} %)"
    )


def scale(sizes: Sequence[int], interval_s: int, window_s: float) -> str:
    rows: Table = []
    metrics_rows: Table = []
    intervals = max(1, int(window_s // interval_s))
    for size in sizes:
        got = live.scale(size, interval_s, window_s)
        rows.append(
            [
                f"{size:,}",
                f"{interval_s} s",
                f"{got['ready_s']:.1f}",
                f"{int(got['runs']):,}",
                _cpu(got),
                f"{got['jitter_p50_s'] * 1000:g} / {got['jitter_p99_s'] * 1000:g}",
                f"{got['duration_p99_s'] * 1000:g}",
                f"{int(got['sockets_max'])}",
                f"{got['rss_mib']:.0f}",
            ]
        )
        metrics_rows.append(
            [f"{size:,}", f"{got['metrics_bytes'] / 1024:,.0f}", f"{got['metrics_ms']:.1f}"]
        )
    head = [
        "specs",
        "interval",
        "ready after (s)",
        f"runs in {intervals} intervals",
        f"CPU of one core: mean over {intervals} whole intervals (min–max of one)",
        "start jitter p50 / p99 (ms, ≤ bucket bound)",
        "probe duration p99 (ms, ≤ bucket bound)",
        "sockets to targets (max)",
        "RSS (MiB)",
    ]
    cmd = f"python -m bench.main --only scale  # live.scale(SPECS, {interval_s}, {window_s:g})"
    return (
        f"{SCALE_METHOD}\n\n```\n{cmd}\n```\n\n"
        + table(head, rows)
        + "\n\n/metrics of the same runs (GET, median of 3):\n\n"
        + table(["specs", "size (KiB)", "render + transfer (ms)"], metrics_rows)
    )


#: The 60 s rows: the defaults, the watch off, and the polling fallback, measured in turns.
SLOW_CASES: list[tuple[str, dict[str, str]]] = [
    ("defaults (contexts folder watched: change notification)", {}),
    ("`ZEROPROBE_CONTEXTS_POLL=0` (no folder watch)", {"ZEROPROBE_CONTEXTS_POLL": "0"}),
    (
        "`ZEROPROBE_CONTEXTS_WATCH=poll` (the fallback: stat data every 1 s)",
        {"ZEROPROBE_CONTEXTS_WATCH": "poll"},
    ),
]


def scale_slow(size: int, window_s: float, rounds: int, cases: Sequence[int]) -> str:
    """10,000 specs at 60 s: each case in turn (order reversed every other round)."""
    chosen = [SLOW_CASES[i] for i in cases]
    got = live.scale_ab(size, 60, window_s, chosen, rounds)
    off = next((got[n] for n, env in chosen if env.get("ZEROPROBE_CONTEXTS_POLL") == "0"), None)
    rows: Table = []
    for name, _ in chosen:
        g = got[name]
        rows.append(
            [
                f"{size:,}",
                name,
                f"{int(g['rounds'])} × {int(g['intervals'] / g['rounds'])}",
                f"{g['ready_s']:.1f}",
                f"{int(g['runs']):,}",
                _cpu(g),
                f"**{g['cpu_core'] / off['cpu_core']:.2f}×**" if off else "",
                f"{g['jitter_p50_s'] * 1000:g} / {g['jitter_p99_s'] * 1000:g}",
                f"{g['duration_p99_s'] * 1000:g}",
                f"{g['rss_mib']:.0f}",
            ]
        )
    head = [
        "specs",
        "settings",
        "processes × whole 60 s intervals",
        "ready after (s, median)",
        "runs measured",
        "CPU of one core: mean over all intervals (min–max of one)",
        "CPU ÷ watch off",
        "start jitter p50 / p99 (ms, ≤ bucket bound)",
        "probe duration p99 (ms, ≤ bucket bound)",
        "RSS (MiB, median)",
    ]
    order = ", ".join(chr(ord("A") + i) for i in range(len(chosen)))
    cmd = (
        f"python -m bench.main --only scale --scale-sizes {size} --slow-window {window_s:g} "
        f"--slow-rounds {rounds}\n"
        f"# live.scale_ab({size}, 60, {window_s:g}, cases, {rounds}): a fresh process per case "
        f"and round, in turns ({order}, then reversed)"
    )
    return (
        f"{SCALE_METHOD} The cases take turns in one run, a fresh `zeroprobe serve` each, their "
        "order reversed every other round, so that whatever else the shared machine does hits "
        "each alike.\n\n"
        f"```\n{cmd}\n```\n\n" + table(head, rows)
    )


@dataclass(frozen=True)
class Section:
    """One section of docs/benchmarks.md: `run` measures and returns its Markdown body."""

    key: str  # the name --only takes
    title: str  # its "## " heading; a merge finds the old text by it
    run: Callable[[argparse.Namespace], str]


def sections(args: argparse.Namespace) -> list[Section]:
    """Every section, in the order of the document. A benchmark module adds one entry here."""
    sizes = [int(s) for s in args.scale_sizes.split(",")]
    tiny = args.tiny
    listed = [
        Section(
            "startup",
            "Start-up and memory",
            lambda a: startup(
                [20] if tiny else [100, 1000, 10000], 1 if tiny else 2, [] if tiny else [100_000]
            ),
        ),
        Section(
            "overhead", "Probe overhead", lambda a: overhead(2 if tiny else 6, 5 if tiny else 50)
        ),
        Section(
            "http",
            "HTTP: PUT /<id>",
            lambda a: http(
                [(0, False, "put.lua"), (0, False, "put_body.lua")]
                if tiny
                else [
                    (0, False, "put.lua"),
                    (0, False, "put_body.lua"),
                    (0, False, "get.lua"),
                    (0, True, "put.lua"),
                    (1000, False, "put.lua"),
                ],
                # 7 rounds: with 3 the idle ratio swung 0.88-0.98 on this shared machine.
                2 if tiny else 7,
                1 if tiny else 5,
                32,
            ),
        ),
        Section(
            "scale",
            "Scale: compressed 5 s interval",
            lambda a: scale([10] if tiny else sizes, 5, 5 if tiny else 20),
        ),
    ]
    cases = [int(c) for c in args.slow_cases.split(",")]
    listed.append(
        Section(
            "scale60",
            "Scale: 60 s interval, defaults and the contexts folder watch",
            lambda a: scale_slow(sizes[-1], a.slow_window, a.slow_rounds, cases),
        )
    )
    listed.append(
        Section("cluster", "Scale-out: 2 shards × 2 replicas", lambda a: cluster.section(a.tiny))
    )
    listed.append(Section("notify", "Notification storm", lambda a: notify_storm.section(a.tiny)))
    listed.append(
        Section("metrics", "/metrics at 10,000 probes", lambda a: metrics_scrape.section(a.tiny))
    )
    listed.append(
        Section(
            "burst", "1,000 probes failing at once", lambda a: failing_burst.bench_section(a.tiny)
        )
    )
    return listed


#: Where the hand-written notes start; everything from here on comes from bench/NOTES.md.
NOTES_HEADING = "## Targets, before/after, and what is left"


def old_sections(path: Path) -> dict[str, str]:
    """The sections of an earlier docs/benchmarks.md by heading (their bodies, stamp
    included), so that a run of some sections keeps the others as they were measured."""
    if not path.exists():
        return {}
    text = path.read_text().split(NOTES_HEADING)[0]
    found: dict[str, str] = {}
    for chunk in text.split("\n## ")[1:]:
        title, _, body = chunk.partition("\n")
        found[title.strip()] = body.strip("\n")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--tiny", action="store_true", help="smoke sizes, seconds not minutes")
    parser.add_argument("--only", default="", help="comma-separated section keys (default: all)")
    parser.add_argument("--scale-sizes", default="100,1000,10000")
    parser.add_argument(
        "--slow-window", type=float, default=65, help="scale60: seconds measured per process"
    )
    parser.add_argument("--slow-rounds", type=int, default=3, help="processes per 60 s case")
    parser.add_argument(
        "--slow-cases", default="0,1,2", help="60 s cases (bench.main.SLOW_CASES), comma-separated"
    )
    args = parser.parse_args(argv)
    listed = sections(args)
    everything = {s.key for s in listed} - ({"scale60"} if args.tiny else set())
    only = set(args.only.split(",")) if args.only else everything
    unknown = only - {s.key for s in listed}
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; known: {[s.key for s in listed]}")
    out = Path(args.out)
    command = "python -m bench.main " + " ".join(argv if argv is not None else sys.argv[1:])
    facts = table(["", ""], [[k, v] for k, v in machine()])
    measured: dict[str, str] = {}

    def write() -> None:
        # Read again at each write: another `--only` run may have rewritten a section meanwhile.
        kept = old_sections(out)
        text = (
            "# Benchmarks\n\n"
            "Written by `python -m bench.main` (`make bench` runs every section). Each section "
            "says when it was measured and by which command; `--only KEY` re-measures some "
            "sections and keeps the others. The machine of the newest run:\n\n"
            f"{facts}\n"
        )
        for section in listed:
            body = measured.get(section.title, kept.get(section.title))
            if body is not None:
                text += f"\n## {section.title}\n\n{body}\n"
        notes = ROOT / "bench" / "NOTES.md"
        if notes.exists() and not args.tiny:
            text += "\n" + notes.read_text()
        out.write_text(text)

    for section in listed:
        if section.key not in only:
            continue
        print(f"bench: {section.title} ...", file=sys.stderr, flush=True)
        started = dt.datetime.now(dt.UTC)
        body = section.run(args)
        stamp = f"_Measured {started:%Y-%m-%d %H:%M} UTC by `{command.strip()}`._"
        measured[section.title] = f"{stamp}\n\n{body}"
        write()  # what is measured so far survives a failure
    write()
    print(f"bench: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
