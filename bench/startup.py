"""Start-up time and memory per probe, in a fresh process:
`python -m bench.startup N INTERVAL [--no-history]`.

Start-up is load + validate + Engine() + first schedule of N specs, in wall seconds and in
this process's CPU seconds (the machine is shared: CPU is the steadier figure); importing the
installed kinds' modules, a fixed cost whatever N, is timed apart (`import_s`). Memory fills
every history with 60 results directly through the runner's bookkeeping (store and metrics),
no probe runs; per probe = (RSS after filling - RSS before loading) / N, the modules of the
installed kinds imported before (about 10 MiB whatever N). `--no-history`
skips the filling (100,000 specs: minutes of it) and reports the RSS of the loaded specs
only. Prints JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import connection_env, labels, rss_bytes, write_specs
from schemas.context_spec import SpecBase
from schemas.grading import Grade, Line
from zeroprobe.config.kinds import installed_kinds
from zeroprobe.config.loader import load_contexts
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.engine.store import HISTORY_SIZE, Result

LABELS = 4


def lines(index: int) -> list[Line]:
    return [
        Line(f"- 127.0.0.1:{27017 + m} (SECONDARY): {200 + index % 7} ms behind", Grade.GREEN)
        for m in (1, 2)
    ]


def fill_histories(engine: Engine, specs: Sequence[SpecBase]) -> None:
    """Give every spec a full history through the runner's bookkeeping, with no probe run."""
    for spec in specs:
        for n in range(HISTORY_SIZE):
            result = Result.build(
                service_id=spec.service_id,
                kind=spec.kind,
                lines=lines(n),
                collected_at_ms=1_700_000_000_000 + n * 60_000,
                duration_s=0.003,
                outcome="success",
                reached_target=True,
            )
            engine.runner._record(spec, engine.kinds[spec.kind], result, None)


async def measure(folder: Path, count: int, history: bool = True) -> dict[str, float]:
    env = {**os.environ, **connection_env(["mongodb://127.0.0.1:9/?directConnection=true"] * 4)}
    # Importing the installed kinds' modules (plugins included) is a fixed cost, whatever N:
    # timed apart, and outside every probe's memory.
    imported = time.perf_counter()
    installed_kinds()
    import_s = time.perf_counter() - imported
    rss_before = rss_bytes(os.getpid())
    cpu_started = time.process_time()
    started = time.perf_counter()
    report = load_contexts(str(folder), env)
    loaded = time.perf_counter()
    cpu_loaded = time.process_time()
    engine = Engine(report.specs, Settings(contexts=str(folder)), env)
    await engine.start()
    scheduled = time.perf_counter()
    cpu_scheduled = time.process_time()
    # Measure memory only: no run must start (the first is planned at once).
    assert engine._scheduler is not None
    engine._scheduler.pause()
    assert len(report.specs) == count, report.problems[:3]
    rss_loaded = rss_bytes(os.getpid())
    times = {
        "specs": count,
        "import_s": import_s,
        "load_s": loaded - started,
        "startup_s": scheduled - started,
        "load_cpu_s": cpu_loaded - cpu_started,
        "startup_cpu_s": cpu_scheduled - cpu_started,
        "rss_loaded_mib": (rss_loaded - rss_before) / 2**20,
        "rss_loaded_per_probe": (rss_loaded - rss_before) / count,
    }
    if not history:
        await engine.stop()
        return times
    fill_histories(engine, [cf.spec for cf in report.specs])
    rss_full = rss_bytes(os.getpid())
    await engine.stop()
    return {
        **times,
        "rss_per_probe": (rss_full - rss_before) / count,
        "history_per_probe": (rss_full - rss_loaded) / count,
    }


def main() -> None:
    count, interval_s = int(sys.argv[1]), int(sys.argv[2])
    history = "--no-history" not in sys.argv[3:]
    with tempfile.TemporaryDirectory(prefix="zeroprobe-bench-") as tmp:
        folder = Path(tmp) / "contexts"
        write_specs(folder, count, labels(LABELS), interval_s)
        print(json.dumps(asyncio.run(measure(folder, count, history))))


if __name__ == "__main__":
    main()
