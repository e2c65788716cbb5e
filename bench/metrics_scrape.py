"""PUT latency while /metrics renders: 10,000 probes with 60 results and two lag series each.

python -m bench.metrics_scrape loop     # render on the event loop (as before)
python -m bench.metrics_scrape thread   # render in a thread, default 5 ms switch interval
python -m bench.metrics_scrape thread 0.001   # ... with `serve`'s 1 ms switch interval

The app on 127.0.0.1 in this process; wrk (4 connections, each pausing 2 ms between PUTs)
and three curl scrapes of /metrics half a second apart in other processes; prints the scrape
times and wrk's PUT p50 / p99 / max.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import ROOT, _latency, connection_env, free_port, labels, write_specs
from bench.startup import fill_histories
from zeroprobe.config.loader import load_contexts
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.web.app import create_app

SPECS = 10_000


async def _inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


async def measure(mode: str) -> str:
    if mode == "loop":
        asyncio.to_thread = _inline  # type: ignore[assignment]  # what app.py calls
    folder = Path(tempfile.mkdtemp())
    write_specs(folder, SPECS, labels(4), 60)
    env = {**os.environ, **connection_env(["mongodb://127.0.0.1:9/?directConnection=true"] * 4)}
    report = load_contexts(str(folder), env)
    engine = Engine(report.specs, Settings(contexts=str(folder)), env)
    await engine.start()
    assert engine._scheduler is not None
    engine._scheduler.pause()  # no run: the histories are filled below
    fill_histories(engine, [cf.spec for cf in report.specs])
    for cf in report.specs:
        engine.metrics.set_kind_series(
            "zeroprobe_mongo_replication_lag_seconds",
            cf.spec.service_id,
            {"127.0.0.1:27018": 0.2, "127.0.0.1:27019": 0.3},
        )
    gc.freeze()  # as `zeroprobe serve` does once serving starts
    runner = web.AppRunner(create_app(engine, start_engine=False), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    # Both clients are other processes, so that a stalled loop here cannot hide a delay.
    load = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        "-c4",
        "-d6s",
        "--latency",
        "-s",
        str(ROOT / "bench" / "put_paced.lua"),
        f"{base}/{report.specs[0].spec.service_id}",
        env={**os.environ, "BENCH_DELAY_MS": "2", "BENCH_TOKEN": ""},
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(1.5)
    scrapes_s: list[float] = []
    for _ in range(3):
        started = time.perf_counter()
        curl = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-o", "/dev/null", f"{base}/metrics"
        )
        assert await curl.wait() == 0
        scrapes_s.append(time.perf_counter() - started)
        await asyncio.sleep(0.5)
    out = (await load.communicate())[0].decode()
    await runner.cleanup()
    await engine.stop()
    size = len(engine.metrics.render())
    latency_max = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out)
    return (
        f"{mode}: /metrics {size / 1e6:.1f} MB in "
        f"{', '.join(f'{s * 1000:.0f}' for s in scrapes_s)} ms; PUT (wrk, 4 connections "
        f"paced 2 ms) p50 {_latency(out, '50%'):.2f} p99 {_latency(out, '99%'):.2f} ms, "
        f"max {latency_max.group(1) if latency_max else '?'}"
    )


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "thread"
    if len(sys.argv) > 2:
        sys.setswitchinterval(float(sys.argv[2]))
    print(asyncio.run(measure(mode)))


if __name__ == "__main__":
    main()
