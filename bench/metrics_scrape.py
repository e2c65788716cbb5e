"""/metrics at 10,000 probes: the kept-rendered exposition against the full render it replaced.

python -m bench.metrics_scrape [--probes 10000] [--rounds 3] [--seconds 8]

One process serves 10,000 Mongo specs, each with 60 results and three lag series, on
127.0.0.1; a churn task stores new results (new durations, new lag values) at the rate that
10,000 probes every 60 s produce (167 a second). Both renderings run in the same process, in
alternating turns:

- "before": the full render by prometheus-client, in a thread (`Metrics.render_uncached`,
  what /metrics did before), classic text, no gzip;
- "text": the kept-rendered exposition, classic text (curl's request);
- "prometheus": the kept-rendered exposition as Prometheus asks for it (its Accept header,
  so OpenMetrics, and `Accept-Encoding: gzip`).

CPU per scrape is the process's CPU (/proc/<pid>/stat) over whole intervals minus that of an
interval with the same churn (or changes) and no scrape, divided by the scrapes: (1) scrapes
back to back while the churn runs; (2) each scrape after the changes of 15 s (2,500 probes,
Prometheus' usual scrape interval). PUT p50/p99 comes from wrk (4 connections, each pausing
2 ms between PUTs) while another process scrapes back to back, and while it does not.
Run with --json for the figures as JSON (bench/main.py formats them).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import PYTHON, ROOT, _latency, connection_env, cpu_seconds, labels, write_specs
from bench.startup import fill_histories
from schemas.grading import Grade, Line
from zeroprobe.config.loader import load_contexts
from zeroprobe.config.settings import Settings
from zeroprobe.engine import gzip_segments
from zeroprobe.engine.core import Engine
from zeroprobe.engine.metrics import METRICS_CONTENT_TYPE, Metrics
from zeroprobe.engine.store import Result
from zeroprobe.web import app as web_app
from zeroprobe.web import scrape as web_scrape
from zeroprobe.web.app import create_app

LAG = "zeroprobe_mongo_replication_lag_seconds"
MEMBERS = ("db1:27017", "db2:27017", "db3:27017")
#: What Prometheus 2 sends when it scrapes.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}
SCRAPERS: dict[str, dict[str, str]] = {
    "before": {"Accept-Encoding": "identity"},
    "text": {"Accept-Encoding": "identity"},
    "prometheus": PROMETHEUS_HEADERS,
}
# The scraper: another process, one keep-alive connection; reads "MODE SECONDS" lines (0
# seconds: one scrape) and answers "scrapes bytes".
SCRAPER = r"""
import http.client, sys, time, json
host, port = sys.argv[1], int(sys.argv[2])
headers = json.loads(sys.argv[3])
conn = http.client.HTTPConnection(host, port)
for line in sys.stdin:
    mode, seconds = line.split()
    end = time.monotonic() + float(seconds)
    count = size = 0
    while True:
        conn.request("GET", "/metrics", headers=headers[mode])
        size = len(conn.getresponse().read())
        count += 1
        if time.monotonic() >= end:
            break
    print(count, size, flush=True)
"""


async def _before(request: web.Request, metrics: Metrics) -> web.StreamResponse:
    """The /metrics handler as it was: the full render in a thread."""
    body = await asyncio.to_thread(metrics.render_uncached)
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


_NEW = web_scrape.serve_metrics


def _use(mode: str) -> None:
    # app.py's handler looks `serve_metrics` up at each request.
    setattr(web_app, "serve_metrics", _before if mode == "before" else _NEW)  # noqa: B010


class Churn:
    """New results for the probes in turn, as their runs would store them."""

    def __init__(self, engine: Engine, service_ids: list[str]) -> None:
        self._engine = engine
        self._ids = service_ids
        self._next = 0
        self._at_ms = 1_800_000_000_000
        self.on = False

    def step(self, count: int) -> None:
        store, metrics = self._engine.store, self._engine.metrics
        for _ in range(count):
            service_id = self._ids[self._next % len(self._ids)]
            self._next += 1
            self._at_ms += 6
            lag_ms = random.randint(0, 9000)
            result = Result.build(
                service_id=service_id,
                kind="mongo_replication_lag",
                lines=[Line(f"- Secondary db2:27017 replication lag {lag_ms}ms", Grade.GREEN)],
                collected_at_ms=self._at_ms,
                duration_s=random.uniform(0.002, 0.004),
                outcome="success",
                reached_target=True,
            )
            store.put(result)
            metrics.run_duration.observe(result.duration_s)
            metrics.set_kind_series(LAG, service_id, {m: random.uniform(0, 10) for m in MEMBERS})

    async def run(self, per_s: float) -> None:
        """`per_s` new results a second, in steps of 100 ms."""
        while True:
            await asyncio.sleep(0.1)
            if self.on:
                self.step(round(per_s / 10))


async def _timed(cpu_of: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    before = cpu_seconds(os.getpid())
    got = await cpu_of()
    return cpu_seconds(os.getpid()) - before, got


async def measure(probes: int, rounds: int, seconds: float) -> dict[str, Any]:
    sys.setswitchinterval(0.001)  # as `zeroprobe serve` does
    folder = Path(tempfile.mkdtemp())
    write_specs(folder, probes, labels(4), 60)
    env = {**os.environ, **connection_env(["mongodb://127.0.0.1:9/?directConnection=true"] * 4)}
    report = load_contexts(str(folder), env)
    engine = Engine(report.specs, Settings(contexts=str(folder)), env)
    await engine.start()
    assert engine._scheduler is not None
    engine._scheduler.pause()  # no run: the histories are filled below, the churn follows
    fill_histories(engine, [cf.spec for cf in report.specs])
    ids = [cf.spec.service_id for cf in report.specs]
    for service_id in ids:
        engine.metrics.set_kind_series(LAG, service_id, dict.fromkeys(MEMBERS, 0.2))
    gc.freeze()  # as `zeroprobe serve` does once serving starts
    runner = web.AppRunner(create_app(engine, start_engine=False), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    scraper = await asyncio.create_subprocess_exec(
        PYTHON,
        "-c",
        SCRAPER,
        "127.0.0.1",
        str(port),
        json.dumps(SCRAPERS),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert scraper.stdin is not None and scraper.stdout is not None

    async def scrape(mode: str, for_s: float) -> tuple[int, int]:
        assert scraper.stdin is not None and scraper.stdout is not None
        _use(mode)
        scraper.stdin.write(f"{mode} {for_s}\n".encode())
        count, size = (await scraper.stdout.readline()).split()
        return int(count), int(size)

    churn = Churn(engine, ids)
    churning = asyncio.create_task(churn.run(probes / 60))
    figures: dict[str, Any] = {"probes": probes, "rounds": rounds, "seconds": seconds}
    for mode in SCRAPERS:  # warm up: the first cached scrape renders every probe
        figures[f"bytes_{mode}"] = (await scrape(mode, 0))[1]
    body = engine.metrics.render()
    figures["bytes_gzip_text"] = len(b"".join(_gzip(body, 1)))
    figures["compress_ms"] = {level: _compress_ms(body, level) for level in (1, 6) if body}
    figures["families"] = _series_per_probe(body, probes)

    # (1) Back-to-back scrapes while the churn runs.
    cpu: dict[str, float] = dict.fromkeys(["idle", *SCRAPERS], 0.0)
    wall: dict[str, float] = dict.fromkeys(cpu, 0.0)
    count: dict[str, int] = dict.fromkeys(cpu, 0)
    churn.on = True
    for _ in range(rounds):
        for mode in cpu:
            started = time.monotonic()
            if mode == "idle":
                used, _ = await _timed(lambda: asyncio.sleep(seconds))
            else:
                used, (n, _) = await _timed(lambda mode=mode: scrape(mode, seconds))  # type: ignore[misc]
                count[mode] += n
            cpu[mode] += used
            wall[mode] += time.monotonic() - started
    idle_rate = cpu["idle"] / wall["idle"]
    figures["back_to_back"] = {
        mode: {
            "scrapes": count[mode],
            "cpu_ms": (cpu[mode] - idle_rate * wall[mode]) / count[mode] * 1000,
        }
        for mode in SCRAPERS
    }
    churn.on = False

    # (2) Each scrape after the changes of 15 s.
    per_scrape = probes * 15 // 60
    steps = max(2, round(seconds))
    cpu2: dict[str, float] = dict.fromkeys(["changes only", *SCRAPERS], 0.0)
    for _ in range(rounds):
        for mode in cpu2:
            before = cpu_seconds(os.getpid())
            for _ in range(steps):
                churn.step(per_scrape)
                await asyncio.sleep(0)
                if mode != "changes only":
                    await scrape(mode, 0)
            cpu2[mode] += cpu_seconds(os.getpid()) - before
    figures["after_15s_of_changes"] = {
        mode: {
            "scrapes": steps * rounds,
            "cpu_ms": (cpu2[mode] - cpu2["changes only"]) / (steps * rounds) * 1000,
        }
        for mode in SCRAPERS
    }

    # (3) PUT latency while another process scrapes back to back.
    figures["put"] = {}
    if shutil.which("wrk"):
        cases = [
            ("no scrape", "idle", 0.001, True),
            ("before", "before", 0.001, True),
            ("text", "text", 0.001, True),
            ("prometheus", "prometheus", 0.001, True),
            ("prometheus, 5 ms switch interval", "prometheus", 0.005, True),
            ("prometheus, built on the event loop", "prometheus", 0.001, False),
        ]
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name, *_ in cases}
        churn.on = True
        for _ in range(rounds):
            for name, mode, interval, in_thread in cases:
                sys.setswitchinterval(interval)
                web_scrape.BUILD_IN_THREAD = in_thread
                load = asyncio.create_task(_wrk(f"{base}/{ids[0]}", seconds))
                await asyncio.sleep(0.5)
                if mode != "idle":
                    await scrape(mode, seconds - 1)
                runs[name].append(await load)
        sys.setswitchinterval(0.001)
        web_scrape.BUILD_IN_THREAD = True
        churn.on = False
        figures["put"] = {
            name: {
                "p50_ms": sorted(r[0] for r in got)[len(got) // 2],
                "p99_ms": sorted(r[1] for r in got)[len(got) // 2],
                "p99_worst_ms": max(r[1] for r in got),
                "max_ms": max(r[2] for r in got),
            }
            for name, got in runs.items()
        }
    churning.cancel()
    assert scraper.stdin is not None
    scraper.stdin.close()
    await scraper.wait()
    await runner.cleanup()
    await engine.stop()
    return figures


def _gzip(body: bytes, level: int) -> list[bytes]:
    return gzip_segments.gzip_pieces([gzip_segments.deflate((body,), level)])


def _compress_ms(body: bytes, level: int) -> float:
    started = time.process_time()
    for _ in range(5):
        gzip_segments.deflate((body,), level)
    return (time.process_time() - started) / 5 * 1000


def _series_per_probe(body: bytes, probes: int) -> dict[str, float]:
    """Samples per probe of each per-probe family (classic text, by sample name)."""
    found: dict[str, int] = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or 'service_id="' not in line:
            continue
        name = line.split("{", 1)[0]
        found[name] = found.get(name, 0) + 1
    return {name: n / probes for name, n in found.items()}


async def _wrk(url: str, seconds: float) -> tuple[float, float, float]:
    load = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        "-c4",
        f"-d{int(seconds)}s",
        "--latency",
        "-s",
        str(ROOT / "bench" / "put_paced.lua"),
        url,
        env={**os.environ, "BENCH_DELAY_MS": "2", "BENCH_TOKEN": ""},
        stdout=asyncio.subprocess.PIPE,
    )
    out = (await load.communicate())[0].decode()
    latency_max = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    worst = float("nan")
    if latency_max:
        worst = (
            float(latency_max.group(1))
            * {"us": 0.001, "ms": 1.0, "s": 1000.0}[latency_max.group(2)]
        )
    return _latency(out, "50%"), _latency(out, "99%"), worst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.probes, args.rounds, args.seconds))
    print(json.dumps(figures) if args.json else markdown(figures, " ".join(sys.argv[1:])))


def command(tiny: bool) -> list[str]:
    """The arguments of the run bench/main.py makes."""
    return ["--probes", "200", "--rounds", "1", "--seconds", "3"] if tiny else []


def section(tiny: bool) -> str:
    """The Markdown body of the bench/main.py section (a run in a child process)."""
    args = command(tiny)
    out = subprocess.run(
        [PYTHON, "-m", "bench.metrics_scrape", "--json", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    return markdown(json.loads(out), " ".join(args))


def markdown(f: dict[str, Any], args: str) -> str:
    b2b, paced, put = f["back_to_back"], f["after_15s_of_changes"], f["put"]
    base_b2b, base_paced = b2b["before"]["cpu_ms"], paced["before"]["cpu_ms"]
    lines = [
        "```sh",
        f"python -m bench.metrics_scrape {args}".rstrip(),
        "```",
        "",
        f"{f['probes']:,} Mongo probes, 60 results and three lag series each; the churn "
        f"stores {f['probes'] / 60:.0f} new results a second. Alternating turns in one process, "
        f"{f['rounds']} round(s) of {f['seconds']:.0f} s. CPU per scrape: the process's CPU "
        "(/proc) over whole intervals, minus an interval with the same churn or changes and "
        "no scrape, divided by the scrapes.",
        "",
        "| scrape | bytes | CPU per scrape, back to back (ms) | vs before | CPU per scrape "
        "after 15 s of changes (ms) | vs before |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "before": "before: full render in a thread, text",
        "text": "kept rendered, text (curl)",
        "prometheus": "kept rendered, OpenMetrics + gzip (Prometheus)",
    }
    for mode, name in names.items():
        lines.append(
            f"| {name} | {f[f'bytes_{mode}']:,} | {b2b[mode]['cpu_ms']:.1f} "
            f"({b2b[mode]['scrapes']} scrapes) | {b2b[mode]['cpu_ms'] / base_b2b:.1%} | "
            f"{paced[mode]['cpu_ms']:.1f} | {paced[mode]['cpu_ms'] / base_paced:.1%} |"
        )
    compress = ", ".join(f"level {k}: {v:.0f} ms" for k, v in f["compress_ms"].items())
    lines += [
        "",
        f"gzip of the whole text body: {f['bytes_gzip_text']:,} bytes at level 1; compressing "
        f"it whole took {compress} (level 1 is used; only the families that changed are "
        "compressed again).",
        "",
        "Per-probe samples (per probe, this set-up): "
        + ", ".join(f"`{k}` {v:g}" for k, v in f["families"].items())
        + ".",
    ]
    if put:
        lines += [
            "",
            "`PUT /<id>` (wrk, 4 connections each pausing 2 ms) while another process "
            "scrapes back to back; median over the rounds, and the worst round's p99:",
            "",
            "| during | PUT p50 (ms) | PUT p99 (ms) | worst p99 (ms) | max (ms) |",
            "|---|---|---|---|---|",
        ]
        for name, got in put.items():
            lines.append(
                f"| {name} | {got['p50_ms']:.2f} | {got['p99_ms']:.2f} | "
                f"{got['p99_worst_ms']:.2f} | {got['max_ms']:.1f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
