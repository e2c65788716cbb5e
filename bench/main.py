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
from pathlib import Path

from bench import live
from bench.common import PYTHON, ROOT, machine, median

Table = list[list[str]]
SECTIONS = ("startup", "overhead", "http", "scale")


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


def startup(sizes: Sequence[int], runs: int) -> str:
    rows: Table = []
    for interval in (60,):
        for size in sizes:
            got = [in_child("bench.startup", size, interval) for _ in range(runs)]
            rows.append(
                [
                    f"{size:,}",
                    f"{interval} s",
                    f"{median([g['load_s'] for g in got]):.3f}",
                    f"{median([g['startup_s'] for g in got]):.3f}",
                    f"{median([g['rss_loaded_per_probe'] for g in got]) / 1024:.1f}",
                    f"{median([g['rss_per_probe'] for g in got]) / 1024:.1f}",
                ]
            )
    head = [
        "specs",
        "interval",
        "load + validate (s)",
        "start-up: load + validate + first schedule (s)",
        "RSS per probe, no result (KiB)",
        "RSS per probe, 60 results (KiB)",
    ]
    cmd = f"python -m bench.startup SPECS INTERVAL  # median of {runs} fresh processes"
    return f"```\n{cmd}\n```\n\n" + table(head, rows)


def overhead(rounds: int, block: int) -> str:
    got = in_child("bench.overhead", rounds, block)
    rows = [
        [
            f"{int(got['runs_each'])}",
            f"{got['probe_ms']:.3f}",
            f"{got['raw_ms']:.3f}",
            f"**{got['ratio']:.2f}×**",
            f"{got['raw_bounded_ms']:.3f}",
            f"{got['ratio_bounded']:.2f}×",
        ]
    ]
    head = [
        "runs each",
        "probe run (ms, median)",
        "raw 2 commands (ms, median)",
        "ratio",
        "raw 2 commands inside pymongo.timeout (ms, median)",
        "ratio to that",
    ]
    cmd = f"python -m bench.overhead {rounds} {block}  # {rounds} alternating blocks of {block}"
    return f"```\n{cmd}\n```\n\n" + table(head, rows)


#: The access token of the "access control on" row (a benchmark value, not a secret).
BENCH_TOKEN = "bench-0123456789abcdef0123456789abcdef"


def http(cases: Sequence[tuple[int, bool]], rounds: int, duration_s: int, conns: int) -> str:
    """One row per (probe count, access control on) case."""
    if shutil.which("wrk") is None:
        return "_wrk is not installed: skipped (`make bench` installs it)._"
    rows: Table = []
    for probes, with_token in cases:
        got = live.http(probes, rounds, duration_s, conns, BENCH_TOKEN if with_token else "")
        load = "idle (1 spec)" if probes == 0 else f"{probes:,} probes every 5 s"
        rows.append(
            [
                load + (", access control on" if with_token else ""),
                f"{got['zp_rps']:,.0f}",
                f"{got['bare_rps']:,.0f}",
                f"**{got['ratio']:.2f}×**",
                f"{got['zp_p50_ms']:.2f} / {got['zp_p99_ms']:.2f}",
                f"{got['bare_p50_ms']:.2f} / {got['bare_p99_ms']:.2f}",
                f"{got['half_rps']:,.0f}",
                f"{got['half_zp_p50_ms']:.2f} / {got['half_zp_p99_ms']:.2f}",
                f"{got['half_bare_p99_ms']:.2f}",
                f"{int(got['errors'])}",
            ]
        )
    head = [
        "load",
        "zeroprobe req/s",
        "bare aiohttp req/s",
        "ratio",
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
        f"BENCH_DELAY_MS=2 wrk -t1 -cN -d{duration_s}s --latency -s bench/put_paced.lua URL"
        "   # paced at half of zeroprobe's rate\n"
        "BENCH_TOKEN=... wrk ...   # access control on: ZEROPROBE_AUTH_TOKEN set, the token "
        "sent as a bearer header to both"
    )
    return f"```\n{cmd}\n```\n\n" + table(head, rows)


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--tiny", action="store_true", help="smoke sizes, seconds not minutes")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--scale-sizes", default="100,1000,10000")
    parser.add_argument(
        "--slow-window", type=float, default=0, help="also 60 s live: seconds measured per process"
    )
    parser.add_argument("--slow-rounds", type=int, default=3, help="processes per 60 s case")
    parser.add_argument(
        "--slow-cases", default="0,1,2", help="60 s cases (bench.main.SLOW_CASES), comma-separated"
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    sizes = [int(s) for s in args.scale_sizes.split(",")]
    tiny = args.tiny
    parts: list[tuple[str, Callable[[], str]]] = []
    if "startup" in only:
        startup_sizes = [20] if tiny else [100, 1000, 10000]
        parts.append(("Start-up and memory", lambda: startup(startup_sizes, 1 if tiny else 2)))
    if "overhead" in only:
        parts.append(("Probe overhead", lambda: overhead(2 if tiny else 6, 5 if tiny else 50)))
    if "http" in only:
        parts.append(
            (
                "HTTP: PUT /<id>",
                lambda: http(
                    [(0, False)] if tiny else [(0, False), (0, True), (1000, False)],
                    # 7 rounds: with 3 the idle ratio swung 0.88-0.98 on this shared machine.
                    2 if tiny else 7,
                    1 if tiny else 5,
                    32,
                ),
            )
        )
    if "scale" in only:
        parts.append(
            (
                "Scale: compressed 5 s interval",
                lambda: scale([10] if tiny else sizes, 5, 5 if tiny else 20),
            )
        )
        if args.slow_window:
            cases = [int(c) for c in args.slow_cases.split(",")]
            parts.append(
                (
                    "Scale: 60 s interval, defaults and the contexts folder watch",
                    lambda: scale_slow(sizes[-1], args.slow_window, args.slow_rounds, cases),
                )
            )
    started = dt.datetime.now(dt.UTC)
    facts = table(["", ""], [[k, v] for k, v in machine()])
    command = "python -m bench.main " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (
        "# Benchmarks\n\n"
        f"Measured {started:%Y-%m-%d %H:%M} UTC by `{command.strip()}` (`make bench`).\n\n"
        f"{facts}\n"
    )
    for title, fn in parts:
        print(f"bench: {title} ...", file=sys.stderr, flush=True)
        text += f"\n## {title}\n\n{fn()}\n"
        Path(args.out).write_text(text)  # what is measured so far survives a failure
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists() and not tiny:
        text += "\n" + notes.read_text()
    Path(args.out).write_text(text)
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
