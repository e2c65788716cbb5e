"""Simulated replica sets for the benchmarks: prints their URIs as JSON, stops by itself."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from zeroprobe.simulators.mongo import SimulatedReplicaSet


def steady_lag_ms(member: int, elapsed_s: float) -> float:
    return 0.0 if member == 0 else 200.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", type=int, default=4)
    parser.add_argument("--duration", type=float, default=300.0)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sets = [
        SimulatedReplicaSet(size=3, set_name=f"bench{i}", lag_fn=steady_lag_ms).start()
        for i in range(args.sets)
    ]
    try:
        print(json.dumps([s.uri for s in sets]), flush=True)
        stop.wait(args.duration)
    finally:
        for replica_set in sets:
            replica_set.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
