"""Probe overhead: one Mongo probe run vs the same commands issued raw.

Everything goes through the same AsyncMongoClient against the same simulated replica set, in
alternating blocks. The commands a probe run sends are recorded first (a command listener on a
second engine's client, so that the measured client carries no listener), and `raw` replays
exactly those, in the same order, with the same arguments: `ratio` (the target) is what
zeroprobe adds to the wire work it needs. Two kinds of run: the steady one (`probe`: the
config and the oplog window known from earlier runs) and the one that reads the window again
(`window`, every 10 minutes of a long window: a clock that jumps 10 minutes per run).
`raw_bounded` (`raw_window_bounded`) replays them inside the same `pymongo.timeout` the probe
uses (a bounded wait makes PyMongo race each read against a timer). For comparison, the
five commands the probe sent before it learnt to skip what it already knows (`hello`,
`replSetGetStatus`, `replSetGetConfig`, two `find`s on the oplog) and the two of the first
probe. Time is the median wall time of one run; CPU is this process's
CPU seconds over whole blocks, per run. Prints JSON: `python -m bench.overhead ROUNDS BLOCK`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pymongo
from pymongo import AsyncMongoClient, monitoring

from bench.common import connection_env, labels, median, simulated_sets, write_specs
from probes.mongo_replication_lag import driver_timeout_s, elections
from probes.mongo_replication_lag.oplog import REUSE_MAX_S
from zeroprobe.config.loader import load_contexts
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine

Client = AsyncMongoClient[dict[str, Any]]
Step = Callable[[Client], Awaitable[object]]
_ENDS = {"ts": 1, "wall": 1, "_id": 0}


async def _hello(client: Client) -> object:
    return await client.admin.command("hello")


async def _status(client: Client) -> object:
    return await client.admin.command("replSetGetStatus")


async def _config(client: Client) -> object:
    return await client.admin.command("replSetGetConfig")


async def _oldest(client: Client) -> object:
    return await client.local["oplog.rs"].find_one({}, _ENDS, sort=[("$natural", 1)])


async def _newest(client: Client) -> object:
    return await client.local["oplog.rs"].find_one({}, _ENDS, sort=[("$natural", -1)])


FIVE: list[Step] = [_hello, _status, _config, _oldest, _newest]
TWO: list[Step] = [_status, _config]


class Recorder(monitoring.CommandListener):
    """The name (and, for a find, the sort) of every command sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        sort = event.command.get("sort") if event.command_name == "find" else None
        self.sent.append((event.command_name, dict(sort) if sort else None))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class JumpingClock:
    """The kind's clock, that jumps `jump_s` at every reading while set (the window case)."""

    def __init__(self) -> None:
        self.offset_s = 0.0
        self.jump_s = 0.0

    def __call__(self) -> float:
        self.offset_s += self.jump_s
        return time.monotonic() + self.offset_s


CLOCK = JumpingClock()


def as_steps(sent: list[tuple[str, Any]]) -> list[Step]:
    """The raw calls that send exactly `sent`."""
    known: dict[tuple[str, Any], Step] = {
        ("hello", None): _hello,
        ("replSetGetStatus", None): _status,
        ("replSetGetConfig", None): _config,
        ("find", json.dumps({"$natural": 1})): _oldest,
        ("find", json.dumps({"$natural": -1})): _newest,
    }
    return [known[(name, json.dumps(sort) if sort else None)] for name, sort in sent]


async def record_commands(uri: str, folder: Path, runs: int) -> dict[str, list[tuple[str, Any]]]:
    """The commands of a steady run and of a run that reads the window (each the same in
    `runs` runs after a first one), on a client that has a listener (registered now: only
    clients created from here on carry it)."""
    recorder = Recorder()
    monitoring.register(recorder)
    engine = _engine(uri, folder)
    (service_id,) = engine.contexts
    modes: dict[str, list[list[tuple[str, Any]]]] = {}
    try:
        await engine.run_once(service_id)
        for mode, jump_s in (("probe", 0.0), ("window", REUSE_MAX_S)):
            CLOCK.jump_s = jump_s
            modes[mode] = []
            for _ in range(runs):
                recorder.sent.clear()
                result = await engine.run_once(service_id)
                assert result.outcome == "success", result.lines
                modes[mode].append(list(recorder.sent))
            # Every run of a kind sends the same commands (else the ratio would be unfair).
            assert all(run == modes[mode][0] for run in modes[mode]), modes
    finally:
        CLOCK.jump_s = 0.0
        await engine.stop()
    return {mode: runs_of[0] for mode, runs_of in modes.items()}


def _engine(uri: str, folder: Path) -> Engine:
    env = {**os.environ, **connection_env([uri])}
    report = load_contexts(str(folder), env)
    return Engine(report.specs, Settings(contexts=str(folder)), env)


async def measure(uri: str, folder: Path, rounds: int, block: int) -> dict[str, Any]:
    engine = _engine(uri, folder)
    (service_id,) = engine.contexts
    client = await engine.mongo.get("bench0")  # created before the recorder is registered
    timeout_s = driver_timeout_s(engine.contexts[service_id].spec.timeout_s)
    elections.clock = CLOCK
    try:
        recorded = await record_commands(uri, folder, 5)
        sent = as_steps(recorded["probe"])

        async def probe() -> None:
            result = await engine.run_once(service_id)
            assert result.outcome == "success", result.lines

        async def window() -> None:
            CLOCK.jump_s = REUSE_MAX_S
            try:
                await probe()
            finally:
                CLOCK.jump_s = 0.0

        def raw_of(steps: list[Step]) -> Callable[[], Awaitable[None]]:
            async def raw() -> None:
                for step in steps:
                    await step(client)

            return raw

        def bounded_of(steps: list[Step]) -> Callable[[], Awaitable[None]]:
            async def bounded() -> None:
                with pymongo.timeout(timeout_s):
                    await raw_of(steps)()

            return bounded

        window_sent = as_steps(recorded["window"])

        cases: dict[str, Callable[[], Awaitable[None]]] = {
            "probe": probe,
            "raw": raw_of(sent),
            "raw_bounded": bounded_of(sent),
            "window": window,
            "raw_window": raw_of(window_sent),
            "raw_window_bounded": bounded_of(window_sent),
            "raw_five": raw_of(FIVE),
            "raw_two": raw_of(TWO),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, float] = dict.fromkeys(cases, 0.0)
        for fn in cases.values():  # connect and warm up every path
            await fn()
        order = list(cases)
        for index in range(rounds):
            # Rotate which one goes first, so that no one always follows the same neighbour.
            shift = index % len(order)
            for name in order[shift:] + order[:shift]:
                fn = cases[name]
                cpu_started = time.process_time()
                for _ in range(block):
                    started = time.perf_counter()
                    await fn()
                    times[name].append(time.perf_counter() - started)
                cpu[name] += time.process_time() - cpu_started
    finally:
        await engine.stop()
    out: dict[str, Any] = {
        "runs_each": len(times["probe"]),
        "commands": [c for c, _ in recorded["probe"]],
        "window_commands": [c for c, _ in recorded["window"]],
    }
    for name in cases:
        out[f"{name}_ms"] = median(times[name]) * 1000
        out[f"{name}_cpu_ms"] = cpu[name] / len(times[name]) * 1000
    for probe_case, baselines in (
        ("probe", ("raw", "raw_bounded", "raw_five", "raw_two")),
        ("window", ("raw_window", "raw_window_bounded", "raw_five")),
    ):
        for name in baselines:
            key = name if probe_case == "probe" else f"{probe_case}_{name}"
            out[f"ratio_{key}"] = out[f"{probe_case}_ms"] / out[f"{name}_ms"]
            out[f"cpu_ratio_{key}"] = out[f"{probe_case}_cpu_ms"] / out[f"{name}_cpu_ms"]
    return out


def main() -> None:
    rounds, block = int(sys.argv[1]), int(sys.argv[2])
    with tempfile.TemporaryDirectory(prefix="zeroprobe-bench-") as tmp:
        folder = Path(tmp) / "contexts"
        write_specs(folder, 1, labels(1), 60)
        with simulated_sets(1, 600) as uris:
            print(json.dumps(asyncio.run(measure(uris[0], folder, rounds, block))))


if __name__ == "__main__":
    main()
