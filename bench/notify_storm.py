"""A notification storm: N probes turn RED at once. `python -m bench.notify_storm [N ...]`

The real runner, notifier, SQLite outbox and send loops, in one process; the receivers (a
webhook, Slack, Discord and an Alertmanager API that only counts) are loopback aiohttp apps in
a thread of their own. Measured per N: the messages each sink got (one is the goal), how long
after the window closed they arrived, how the transitions reached the disk (transactions and
their time), the Alertmanager pushes, and the longest stall of the event loop meanwhile (what a
`PUT` arriving then would wait). Prints one JSON line per N, then a Markdown table.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from probes.base import Kind, Observation, ProbeContext
from schemas.context_spec import SpecBase
from schemas.grading import Grade, Line
from zeroprobe.config.loader import ContextFile
from zeroprobe.config.notifiers import load_notifiers
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.notify.notifier import Notifier
from zeroprobe.notify.outbox import Outbox
from zeroprobe.simulators.monitoring import ThreadedApp

COALESCE_S = 2.0


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
    """Loopback receivers recording (path, arrival time, body size)."""

    got: list[tuple[str, float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> web.Application:
        async def receive(request: web.Request) -> web.Response:
            body = await request.read()
            with self.lock:
                self.got.append((request.path, time.monotonic(), len(body)))
            if request.path.startswith("/discord"):
                return web.Response(status=204)
            return web.Response(text="ok")

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", receive)
        return app

    def of(self, prefix: str) -> list[tuple[str, float, int]]:
        with self.lock:
            return [g for g in self.got if g[0].startswith(prefix)]


class TimedOutbox(Outbox):
    """The outbox, timing its `record` transactions (on its own thread)."""

    def __init__(self, data_dir: str) -> None:
        super().__init__(data_dir)
        self.records: list[float] = []

    def _record(self, entries: Any, at_ms: int) -> None:
        started = time.perf_counter()
        super()._record(entries, at_ms)
        self.records.append(time.perf_counter() - started)


async def loop_lag(stop: asyncio.Event, lags: list[tuple[float, float]]) -> None:
    """The event loop's delay in waking a 10 ms sleeper (with when it slept), until `stop`."""
    while not stop.is_set():
        slept_at = time.monotonic()
        started = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append((slept_at, time.perf_counter() - started - 0.01))


async def storm(n: int, receivers: Receivers, base: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        notifiers = Path(folder) / "notifiers.yaml"
        notifiers.write_text(
            f"coalesce: {COALESCE_S}s\n"
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
            ContextFile(StormSpec(service_id=f"shop.svc{i:05d}", kind="storm"), "x.yaml", 1)
            for i in range(n)
        ]
        engine = Engine(
            specs,
            Settings(notifiers=str(notifiers), data_dir=folder),
            env,
            kinds={"storm": weather.kind()},
            notifiers=report.notifiers,
        )
        notifier = Notifier(engine)
        outbox = TimedOutbox(folder)
        notifier.outbox = outbox
        await notifier.start()
        ids = list(engine.contexts)
        await asyncio.gather(*(engine.run_once(sid) for sid in ids))  # all GREEN first
        await asyncio.sleep(0.5)
        with receivers.lock:
            receivers.got.clear()
        # As `serve` does once started: what lives as long as the process is out of the
        # collector's sight, so a full collection does not walk it.
        gc.collect()
        gc.freeze()
        lags: list[tuple[float, float]] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(loop_lag(stop, lags))
        weather.grade = Grade.RED
        started = time.monotonic()
        await asyncio.gather(*(engine.run_once(sid) for sid in ids))  # the network dropped
        runs_done = time.monotonic()
        await notifier.settle()
        written = time.monotonic()
        for _ in range(round((COALESCE_S + 60) / 0.05)):  # polled: they are in another thread
            if all(receivers.of(p) for p in ("/hook", "/slack", "/discord")):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # anything more would arrive now
        stop.set()
        await sampler
        await engine.stop()
        await notifier.stop()
        gc.unfreeze()
    window_end = started + COALESCE_S
    result: dict[str, float] = {
        "probes": n,
        "runs_s": runs_done - started,
        "to_disk_s": written - started,
        "transactions": len(outbox.records),
        "transactions_s": sum(outbox.records),
        # While the 2,000 runs themselves finish in one go (not how a scheduler spreads them),
        # and afterwards: what the notifier alone costs the loop (outbox, sealing, bodies).
        "loop_lag_runs_ms": max((lag for at, lag in lags if at <= runs_done), default=0) * 1000,
        "loop_lag_after_ms": max((lag for at, lag in lags if at > runs_done), default=0) * 1000,
        "am_pushes": len(receivers.of("/am")),
        "am_bytes": sum(g[2] for g in receivers.of("/am")),
    }
    for sink in ("hook", "slack", "discord"):
        got = receivers.of(f"/{sink}")
        result[f"{sink}_messages"] = len(got)
        result[f"{sink}_after_window_s"] = (got[0][1] - window_end) if got else float("nan")
        result[f"{sink}_bytes"] = got[0][2] if got else 0
    return result


def markdown(results: Sequence[dict[str, float]]) -> str:
    """One row per size: medians over its runs, the worst run in parentheses."""
    head = [
        "probes RED at once",
        "messages: webhook / Slack / Discord",
        "delivered after the 2 s window",
        "webhook body",
        "outbox write (one transaction)",
        "Alertmanager pushes",
        "event-loop stall after the runs",
    ]
    rows = []
    for n in sorted({int(r["probes"]) for r in results}):
        runs = [r for r in results if int(r["probes"]) == n]
        late = [max(r[f"{s}_after_window_s"] for s in ("hook", "slack", "discord")) for r in runs]
        write = [r["transactions_s"] * 1000 for r in runs]
        stall = [r["loop_lag_after_ms"] for r in runs]
        messages = " / ".join(
            "/".join(sorted({str(int(r[f"{s}_messages"])) for r in runs}))
            for s in ("hook", "slack", "discord")
        )
        rows.append(
            [
                f"{n:,} ({len(runs)} runs)",
                messages,
                f"{statistics.median(late):.2f} s (max {max(late):.2f})",
                f"{statistics.median(r['hook_bytes'] for r in runs) / 1024:.0f} KiB",
                f"{statistics.median(write):.0f} ms (max {max(write):.0f})",
                f"{statistics.median(r['am_pushes'] for r in runs):.0f} "
                f"({statistics.median(r['am_bytes'] for r in runs) / 1024:.0f} KiB)",
                f"{statistics.median(stall):.0f} ms (max {max(stall):.0f})",
            ]
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    runs = 3
    if args[:1] == ["--runs"]:
        runs, args = int(args[1]), args[2:]
    sizes = [int(a) for a in args] or [500, 2000]
    receivers = Receivers()
    server = ThreadedApp(receivers.app)
    server.start()
    try:
        results = []
        for _ in range(runs):
            for n in sizes:
                result = asyncio.run(storm(n, receivers, server.url))
                print(json.dumps(result), flush=True)
                results.append(result)
    finally:
        server.stop()
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
