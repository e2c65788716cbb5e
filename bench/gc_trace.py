"""`zeroprobe` with its garbage collections timed: a diagnostic wrapper for the benchmarks.

python -m bench.gc_trace serve     # as `python -m zeroprobe serve`, plus one stderr line
                                   # "gc-pause gen=2 ms=81.3 at=<monotonic s>" per collection
                                   # that takes at least GC_TRACE_MIN_MS (default 5) ms

A collection stops the event loop like any other blocking call; this tells such pauses apart
from the loop's own work without changing zeroprobe. GC_TRACE_FREEZE_AFTER_S=N (an
experiment) calls gc.freeze() N seconds after the start, once the specs are loaded: what is
alive then is never scanned again.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from typing import Any

from zeroprobe.cli import main

MIN_MS = float(os.environ.get("GC_TRACE_MIN_MS", "5"))
_started: list[float] = [0.0]


def _time_collections(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.monotonic()
        return
    took_ms = (time.monotonic() - _started[0]) * 1000
    if took_ms >= MIN_MS:
        print(
            f"gc-pause gen={info['generation']} ms={took_ms:.1f} at={time.monotonic():.3f}",
            file=sys.stderr,
            flush=True,
        )


def _freeze_later(delay_s: float) -> None:
    time.sleep(delay_s)
    gc.freeze()
    print(f"gc-freeze objects={gc.get_freeze_count()}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    gc.callbacks.append(_time_collections)
    freeze_after = os.environ.get("GC_TRACE_FREEZE_AFTER_S")
    if freeze_after:
        threading.Thread(target=_freeze_later, args=(float(freeze_after),), daemon=True).start()
    raise SystemExit(main())
