"""Probe overhead: one Mongo probe run vs the same two admin commands issued raw.

All go through the same AsyncMongoClient against the same simulated replica set, in
alternating blocks. `ratio` is the probe against the raw commands (the target);
`ratio_bounded` against the raw commands inside the same `pymongo.timeout` the probe uses
(a bounded wait makes PyMongo race each read against a timer: extra tasks and event-loop
turns), which isolates what zeroprobe itself adds. Prints JSON:
`python -m bench.overhead ROUNDS BLOCK`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pymongo

from bench.common import connection_env, labels, median, simulated_sets, write_specs
from probes.mongo_replication_lag import driver_timeout_s
from zeroprobe.config.loader import load_contexts
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine


async def measure(uri: str, folder: Path, rounds: int, block: int) -> dict[str, float]:
    env = {**os.environ, **connection_env([uri])}
    report = load_contexts(str(folder), env)
    engine = Engine(report.specs, Settings(contexts=str(folder)), env)
    (service_id,) = engine.contexts
    client = engine.mongo.get("bench0")
    probe_s: list[float] = []
    raw_s: list[float] = []
    bounded_s: list[float] = []
    timeout_s = driver_timeout_s(engine.contexts[service_id].spec.timeout_s)

    async def probe() -> None:
        result = await engine.run_once(service_id)
        assert result.outcome == "success", result.lines

    async def raw() -> None:
        await client.admin.command("replSetGetStatus")
        await client.admin.command("replSetGetConfig")

    async def bounded() -> None:
        with pymongo.timeout(timeout_s):
            await raw()

    try:
        await probe()  # connect and warm up both paths
        await raw()
        await bounded()
        for index in range(rounds):
            order = [(probe, probe_s), (raw, raw_s), (bounded, bounded_s)]
            # Rotate which one goes first, so that no one always follows the same neighbour.
            shift = index % len(order)
            for fn, times in order[shift:] + order[:shift]:
                for _ in range(block):
                    started = time.perf_counter()
                    await fn()
                    times.append(time.perf_counter() - started)
    finally:
        await engine.stop()
    return {
        "runs_each": len(probe_s),
        "probe_ms": median(probe_s) * 1000,
        "raw_ms": median(raw_s) * 1000,
        "ratio": median(probe_s) / median(raw_s),
        "raw_bounded_ms": median(bounded_s) * 1000,
        "ratio_bounded": median(probe_s) / median(bounded_s),
    }


def main() -> None:
    rounds, block = int(sys.argv[1]), int(sys.argv[2])
    with tempfile.TemporaryDirectory(prefix="zeroprobe-bench-") as tmp:
        folder = Path(tmp) / "contexts"
        write_specs(folder, 1, labels(1), 60)
        with simulated_sets(1, 120) as uris:
            print(json.dumps(asyncio.run(measure(uris[0], folder, rounds, block))))


if __name__ == "__main__":
    main()
