"""A notification storm: N probes turn RED at once. `python -m bench.notify_storm [N ...]`

The real runner, notifier, SQLite outbox and send loops, and the real app serving `PUT /<id>`,
in one process, as `zeroprobe serve` has them; the receivers (a webhook, Slack, Discord and an
Alertmanager API that only counts) are loopback aiohttp apps in a child process, so that their
work stays out of the measured process. Measured per N: the messages each sink got (one is the
goal), how long after the coalescing window (the default, 10 s) they arrived, how the
transitions reached the disk, the Alertmanager pushes, the longest stall of the event loop, and
`PUT` latency (wrk, paced) during the storm against the same wrk run just before it (the
baseline, the same process, all GREEN). Prints one JSON line per N, then a Markdown table.
`--section` prints the bench.main section instead.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from bench.common import free_port, wait_http, wrk
from probes.base import Kind, Observation, ProbeContext
from schemas.context_spec import SpecBase
from schemas.grading import Grade, Line
from zeroprobe.config.loader import ContextFile
from zeroprobe.config.notifiers import DEFAULT_COALESCE_S, load_notifiers
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.notify.notifier import Notifier
from zeroprobe.notify.outbox import Outbox
from zeroprobe.web.app import create_app
from zeroprobe.web.server import METRICS_THREAD_SWITCH_INTERVAL_S, ServiceRunner


class StormSpec(SpecBase):
    """A probe whose colour the benchmark sets."""

    kind: Literal["storm"]


@dataclass
class Storm:
    """The colour every probe measures next."""

    grade: Grade = Grade.GREEN

    def kind(self) -> Kind[StormSpec, Observation]:
        async def probe(spec: StormSpec, ctx: ProbeContext) -> Observation:
            return Observation()

        def grade(observation: Observation, spec: StormSpec) -> list[Line]:
            return [Line(f"- {spec.service_id} answered 503 in 12ms", self.grade)]

        return Kind(name="storm", spec=StormSpec, probe=probe, grade=grade)


@dataclass
class Receivers:
    """Loopback receivers in a child process, each arrival a line (path, CLOCK_MONOTONIC time,
    body size) in a file: the clock is the same in every process of the machine."""

    log: Path
    url: str = ""
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Receivers:
        port = free_port()
        self.log.write_text("")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.notify_storm", "--receive", str(port), str(self.log)]
        )
        self.url = f"http://127.0.0.1:{port}"
        wait_http(f"{self.url}/ready")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def clear(self) -> None:
        self.log.write_text("")

    def of(self, prefix: str) -> list[tuple[str, float, int]]:
        got = []
        for row in self.log.read_text().splitlines():
            path, at, size = row.split()
            if path.startswith(prefix):
                got.append((path, float(at), int(size)))
        return got


def receive(port: int, log: Path) -> None:
    """The receivers' process: answer every POST as the services do, log each arrival."""

    async def received(request: web.Request) -> web.Response:
        body = await request.read()
        with log.open("a") as out:
            out.write(f"{request.path} {time.monotonic()} {len(body)}\n")
        if request.path.startswith("/discord"):
            return web.Response(status=204)
        return web.Response(text="ok")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/ready", ready)
    app.router.add_post("/{tail:.*}", received)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


class TimedOutbox(Outbox):
    """The outbox, timing its `record` transactions (on its own thread)."""

    def __init__(self, data_dir: str) -> None:
        super().__init__(data_dir)
        self.records: list[float] = []

    def _record(self, entries: Any, at_ms: int) -> None:
        started = time.perf_counter()
        super()._record(entries, at_ms)
        self.records.append(time.perf_counter() - started)


def p99(lags_s: Sequence[float]) -> float:
    """The 99th percentile of delays in seconds, in ms (nan for none)."""
    if not lags_s:
        return float("nan")
    ordered = sorted(lags_s)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000


async def loop_lag(stop: asyncio.Event, lags: list[tuple[float, float]]) -> None:
    """The event loop's delay in waking a 10 ms sleeper (with when it slept), until `stop`."""
    while not stop.is_set():
        slept_at = time.monotonic()
        started = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append((slept_at, time.perf_counter() - started - 0.01))


#: wrk's pacing: each of PUT_CONNECTIONS connections waits PUT_DELAY_MS between requests.
PUT_CONNECTIONS = 4
PUT_DELAY_MS = 2


@dataclass(frozen=True)
class Plan:
    """How a storm runs: the probes' interval, the spread of a round's starts (the engine's
    `first_run_spread_s`, 5 s by default) and the coalescing window (10 s by default)."""

    interval_s: float
    spread_s: float
    coalesce_s: float

    @property
    def put_s(self) -> int:
        """How long each wrk run measures: a round's starts, the window, the deliveries."""
        return round(self.spread_s + self.coalesce_s + 4)


async def storm(n: int, receivers: Receivers, plan: Plan) -> dict[str, float]:
    """N probes scheduled by the engine as `serve` schedules them; a GREEN round measured
    (the baseline), then the next round turns every probe RED (the storm)."""
    base = receivers.url
    with tempfile.TemporaryDirectory() as folder:
        notifiers = Path(folder) / "notifiers.yaml"
        notifiers.write_text(
            f"coalesce: {plan.coalesce_s:g}s\n"
            f"alertmanager:\n  urls: [{base}/am]\n  resend_interval: 1h\n"
            "sinks:\n"
            "  - {name: hook, type: webhook, url_env: HOOK}\n"
            "  - {name: slack, type: slack, url_env: SLACK}\n"
            "  - {name: discord, type: discord, url_env: DISCORD}\n",
            encoding="utf-8",
        )
        env = {"HOOK": f"{base}/hook", "SLACK": f"{base}/slack", "DISCORD": f"{base}/discord"}
        report = load_notifiers(notifiers, env)
        weather = Storm()
        specs = [
            ContextFile(
                StormSpec(
                    service_id=f"shop.svc{i:05d}",
                    kind="storm",
                    interval=plan.interval_s,
                    timeout=min(10.0, plan.interval_s / 2),
                ),
                "x.yaml",
                1,
            )
            for i in range(n)
        ]
        settings = Settings(
            notifiers=str(notifiers),
            data_dir=folder,
            port=free_port(),
            first_run_spread_s=plan.spread_s,
        )
        engine = Engine(
            specs, settings, env, kinds={"storm": weather.kind()}, notifiers=report.notifiers
        )
        notifier = Notifier(engine)
        outbox = TimedOutbox(folder)
        notifier.outbox = outbox
        await notifier.start()
        # Served as `serve` serves (its runner and limits), the engine started by the app.
        runner = ServiceRunner(create_app(engine), settings)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.port).start()
        round_1 = time.time()  # the first round's starts spread from here
        ids = list(engine.contexts)
        put_url = f"http://127.0.0.1:{settings.port}/{ids[-1]}"
        # As `serve` does once started: what lives as long as the process is out of the
        # collector's sight, so a full collection does not walk it.
        gc.collect()
        gc.freeze()
        # And, as `serve` does, threads (the outbox, the pushers' alert lists, the sinks'
        # bodies) hand the GIL back to the event loop every millisecond.
        sys.setswitchinterval(METRICS_THREAD_SWITCH_INTERVAL_S)

        async def until(at_s: float) -> None:
            await asyncio.sleep(max(0.0, at_s - time.time()))

        # The baseline: the second round, every probe GREEN again (no transition).
        await until(round_1 + plan.interval_s - 0.5)
        receivers.clear()
        lags: list[tuple[float, float]] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(loop_lag(stop, lags))
        baseline_from = time.monotonic()
        before = await asyncio.to_thread(
            wrk, put_url, plan.put_s, PUT_CONNECTIONS, delay_ms=PUT_DELAY_MS
        )
        baseline_to = time.monotonic()
        # The storm: the network drops just before the third round.
        await until(round_1 + 2 * plan.interval_s - 0.5)
        weather.grade = Grade.RED
        storm_from = time.monotonic()
        during = asyncio.create_task(
            asyncio.to_thread(wrk, put_url, plan.put_s, PUT_CONNECTIONS, delay_ms=PUT_DELAY_MS)
        )
        for _ in range(round((plan.spread_s + 30) / 0.05)):
            if all(engine.store.newest(sid).grade is Grade.RED for sid in ids):  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.05)
        runs_done = time.monotonic()
        first_red_ms = min(engine.store.newest(sid).collected_at_ms for sid in ids)  # type: ignore[union-attr]
        # The results carry wall-clock times, the receivers' log monotonic ones.
        first_red = first_red_ms / 1000 - (time.time() - time.monotonic())
        await notifier.settle()
        for _ in range(round((plan.coalesce_s + 60) / 0.05)):  # polled: another process
            if all(receivers.of(p) for p in ("/hook", "/slack", "/discord")):
                break
            await asyncio.sleep(0.05)
        storm_put = await during
        storm_to = time.monotonic()
        stop.set()
        await sampler
        await runner.cleanup()  # stops the engine
        await notifier.stop()
        gc.unfreeze()
    result: dict[str, float] = {
        "probes": n,
        "coalesce_s": plan.coalesce_s,
        "interval_s": plan.interval_s,
        "runs_s": runs_done - first_red,
        "transactions": len(outbox.records),
        "transactions_s": sum(outbox.records),
        # The loop's longest stall once every probe was RED: the notification work alone.
        "loop_lag_after_ms": max((lag for at, lag in lags if at > runs_done), default=0) * 1000,
        # The event loop's delay in waking a 10 ms sleeper, p99, over each wrk run: what this
        # process itself adds to a PUT's wait, without wrk's own scheduling on a busy machine.
        "loop_lag_before_p99_ms": p99(
            [lag for at, lag in lags if baseline_from <= at <= baseline_to]
        ),
        "loop_lag_storm_p99_ms": p99([lag for at, lag in lags if storm_from <= at <= storm_to]),
        "am_pushes": len(receivers.of("/am")),
        "am_bytes": sum(g[2] for g in receivers.of("/am")),
        "put_before_p50_ms": before.p50_ms,
        "put_before_p99_ms": before.p99_ms,
        "put_storm_p50_ms": storm_put.p50_ms,
        "put_storm_p99_ms": storm_put.p99_ms,
        "put_storm_rps": storm_put.requests_s,
        "put_errors": before.errors + storm_put.errors,
    }
    arrivals = []
    for sink in ("hook", "slack", "discord"):
        got = receivers.of(f"/{sink}")
        arrivals += [g[1] for g in got]
        result[f"{sink}_messages"] = len(got)
        result[f"{sink}_bytes"] = got[0][2] if got else 0
    # From the first RED run (the change noticed) to the last sink's delivery.
    result["last_delivery_s"] = (max(arrivals) - first_red) if arrivals else float("nan")
    return result


def markdown(results: Sequence[dict[str, float]]) -> str:
    """One row per size: medians over its runs, the worst run in parentheses."""
    head = [
        "probes turning RED in one round",
        "messages: webhook / Slack / Discord",
        "last notification after the first RED run",
        "PUT p50 / p99 during the storm (ms)",
        "PUT p50 / p99 just before, same process (ms)",
        "PUT p99 ratio",
        "webhook body",
        "outbox writes: transactions (their time)",
        "Alertmanager pushes",
        "event-loop delay p99: storm / GREEN round (ms)",
        "event-loop stall after the runs",
    ]
    rows = []
    for n in sorted({int(r["probes"]) for r in results}):
        runs = [r for r in results if int(r["probes"]) == n]
        last = [r["last_delivery_s"] for r in runs]
        write = [r["transactions_s"] * 1000 for r in runs]
        stall = [r["loop_lag_after_ms"] for r in runs]
        storm_p99 = [r["put_storm_p99_ms"] for r in runs]
        before_p99 = [r["put_before_p99_ms"] for r in runs]
        messages = " / ".join(
            "/".join(sorted({str(int(r[f"{s}_messages"])) for r in runs}))
            for s in ("hook", "slack", "discord")
        )
        med = statistics.median
        rows.append(
            [
                f"{n:,} ({len(runs)} runs)",
                messages,
                f"{med(last):.2f} s (max {max(last):.2f})",
                f"{med(r['put_storm_p50_ms'] for r in runs):.2f} / **{med(storm_p99):.2f}** "
                f"(max {max(storm_p99):.2f})",
                f"{med(r['put_before_p50_ms'] for r in runs):.2f} / {med(before_p99):.2f}",
                f"{med(a / b for a, b in zip(storm_p99, before_p99, strict=True)):.2f}×",
                f"{med(r['hook_bytes'] for r in runs) / 1024:.0f} KiB",
                f"{med(r['transactions'] for r in runs):.0f} ({med(write):.0f} ms)",
                f"{med(r['am_pushes'] for r in runs):.0f} "
                f"({med(r['am_bytes'] for r in runs) / 1024:.0f} KiB)",
                f"{med(r['loop_lag_storm_p99_ms'] for r in runs):.1f} / "
                f"{med(r['loop_lag_before_p99_ms'] for r in runs):.1f}",
                f"{med(stall):.0f} ms (max {max(stall):.0f})",
            ]
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def measure(sizes: Sequence[int], runs: int, plan: Plan) -> list[dict[str, float]]:
    """Every size `runs` times, in turns; the receivers in a child process."""
    with tempfile.TemporaryDirectory() as folder:
        receivers = Receivers(Path(folder) / "arrivals.log").start()
        try:
            results = []
            for _ in range(runs):
                for n in sizes:
                    result = asyncio.run(storm(n, receivers, plan))
                    print(json.dumps(result), file=sys.stderr, flush=True)
                    results.append(result)
        finally:
            receivers.stop()
    return results


#: The section's storm: probes every 30 s (a row changes one setting: the interval, from the
#: default 60 s, to halve the run's length; a round's starts spread over the default 5 s either
#: way, so the storm itself is the same), the default coalescing window.
FULL_PLAN = Plan(interval_s=30.0, spread_s=5.0, coalesce_s=DEFAULT_COALESCE_S)
TINY_PLAN = Plan(interval_s=8.0, spread_s=1.0, coalesce_s=1.0)


def section(tiny: bool) -> str:
    """bench.main's "Notification storm" section."""
    sizes, runs, plan = ([50], 1, TINY_PLAN) if tiny else ([1000], 3, FULL_PLAN)
    cmd = (
        f"python -m bench.notify_storm --runs {runs} --interval {plan.interval_s:g} "
        f"--spread {plan.spread_s:g} --coalesce {plan.coalesce_s:g} " + " ".join(map(str, sizes))
    )
    intro = (
        "N probes, scheduled by the engine as `serve` schedules them (every "
        f"{plan.interval_s:g} s, a round's starts spread over {plan.spread_s:g} s), turn RED "
        "in the same round (a network drop), in one process with the real runner, notifier, "
        "SQLite outbox, send loops and the app serving `PUT` as `serve` does; a webhook, a "
        "Slack and a Discord sink and an Alertmanager are loopback receivers in another "
        f"process. Coalescing window: {plan.coalesce_s:g} s (the default). The one setting "
        "changed: the interval (default 60 s), to shorten the run; a round's starts spread "
        f'over the same {plan.spread_s:g} s either way, so the storm is the same. "Last '
        "notification\": from the first RED run to the last sink's delivery. `PUT`: wrk, "
        f"{PUT_CONNECTIONS} connections each pausing {PUT_DELAY_MS} ms, for {plan.put_s} s from "
        "the storm's round (its runs, the window, the deliveries), against the same wrk run "
        "over the GREEN round before it (the baseline: the same runs, no transition). "
        '"Stall": the longest delay of a 10 ms sleeper on the event loop once every probe '
        "was RED (the notification work alone)."
    )
    return f"{intro}\n\n```\n{cmd}\n```\n\n" + markdown(measure(sizes, runs, plan))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sizes", nargs="*", type=int, default=[1000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--interval", type=float, default=FULL_PLAN.interval_s)
    parser.add_argument("--spread", type=float, default=FULL_PLAN.spread_s)
    parser.add_argument("--coalesce", type=float, default=FULL_PLAN.coalesce_s)
    parser.add_argument("--receive", nargs=2, help=argparse.SUPPRESS)  # the receivers' process
    args = parser.parse_args(argv)
    if args.receive:
        receive(int(args.receive[0]), Path(args.receive[1]))
        return 0
    plan = Plan(args.interval, args.spread, args.coalesce)
    print(markdown(measure(args.sizes, args.runs, plan)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
