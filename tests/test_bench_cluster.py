"""The scale-out benchmark's own parts (bench/cluster.py): wrk cycling through a list of ids
against a real server on loopback, and the report's arithmetic. `make bench` runs it for real."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from aiohttp import web

from bench.cluster import TINY, Turn, owner, report, timed_out, write_specs, wrk_ids
from bench.common import WrkRun
from zeroprobe.config.loader import load_contexts
from zeroprobe.config.topology import Topology
from zeroprobe.simulators.monitoring import ThreadedApp


def test_put_ids_lua_puts_every_id_of_the_list_in_turn(tmp_path: Path) -> None:
    seen: Counter[str] = Counter()

    def app() -> web.Application:
        async def put(request: web.Request) -> web.Response:
            seen[f"{request.method} {request.path}"] += 1
            return web.json_response({})

        application = web.Application()
        application.router.add_route("*", "/{id}", put)
        return application

    ids = tmp_path / "ids"
    ids.write_text("a.one\nb.two\nc.three\n")
    server = ThreadedApp(app).start()
    try:
        run = wrk_ids(server.url, ids, duration_s=1, connections=1, delay_ms=0)
    finally:
        server.stop()

    assert set(seen) == {"PUT /a.one", "PUT /b.two", "PUT /c.three"}
    assert max(seen.values()) - min(seen.values()) <= 1, "in turn, one connection"
    assert run.errors == 0
    assert run.requests_s > 0
    assert 0 < run.p50_ms <= run.p99_ms


def test_bench_specs_load_and_split_over_the_shards_as_the_runtime_splits_them(
    tmp_path: Path,
) -> None:
    ids = write_specs(tmp_path, 200, 2, TINY.interval_s)

    report_ = load_contexts(tmp_path, {"ZEROPROBE_CONNECTION_PROM0": "http://127.0.0.1:1"})

    assert report_.ok, report_.problems
    assert sorted(found.spec.service_id for found in report_.specs) == ids
    pods = [Topology(shards=2, replicas=2, index=i) for i in range(4)]
    for sid in ids:
        assert [pod.owns(sid) for pod in pods].count(True) == 2
        assert pods[2 * owner(sid, 2)].owns(sid)
    shares = Counter(owner(sid, 2) for sid in ids)
    assert 60 <= shares[0] <= 140, shares


def turn(shards: int, owned: list[int], cpu_s: list[float], *, forwarded_rps: float = 0) -> Turn:
    pods = len(owned)
    got = Turn(
        shards=shards,
        replicas=pods // shards,
        owned=owned,
        cpu_s=cpu_s,
        wall_s=60.0,
        ready_s=[1.0] * pods,
        rss_bytes=[2**20] * pods,
        metrics_bytes=[100 * n for n in owned],
        runs=[float(n) for n in owned],
        timeouts=[1.0] * pods,
    )
    if forwarded_rps:
        got.local = [WrkRun(1000.0, 1.0, 2.0, 0)]
        got.forwarded = [WrkRun(forwarded_rps, 2.0, 4.0, 0)]
        got.local_paced = [WrkRun(200.0, 0.5, 1.0, 0)]
        got.forwarded_paced = [WrkRun(200.0, 1.0, 2.5, 1)]
        got.outcomes = {"ok": 10.0}
    return got


def test_report_compares_cpu_per_owned_probe_and_forwarded_throughput() -> None:
    sizes = TINY
    # Each pod owns half the ids and spends 0.6 s: 0.6 / 20 × 1000 = 30 ms a probe (of a 60 s
    # measured window: × interval 2 s / 60 s = 1 ms per 2 s interval); one process 0.8 s for 40.
    cluster = turn(2, [20, 20, 20, 20], [0.6, 0.6, 0.6, 0.6], forwarded_rps=600)
    single = turn(1, [40], [0.8])

    text = report(sizes, [cluster], [single], "python -m bench.main --only cluster")

    assert "| owned by the other shard: forwarded (one hop) | 600 | **0.60×** |" in text
    assert "1.00 / **2.50**" in text
    assert "| 1 |" in text, "the paced run's non-2xx answer"
    assert "ok 10" in text
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert "| **1.000** | **1.50×** |" in rows["| **the cluster**: 4 pods"]
    assert "| **0.667** | 1.00× |" in rows["| one process (S = R = 1)"]
    assert "| 20 | " in rows["| pod 3 (shard 1, replica 1)"]
    assert "| 80 (4) |" in rows["| **the cluster**: 4 pods"], "runs (of them timed out)"


def test_timed_out_runs_are_summed_over_every_probe() -> None:
    metrics = "\n".join(
        [
            'zeroprobe_probe_runs_total{kind="k",outcome="ok",service_id="a"} 9.0',
            'zeroprobe_probe_runs_total{kind="k",outcome="timeout",service_id="a"} 2.0',
            'zeroprobe_probe_runs_total{kind="k",outcome="timeout",service_id="b"} 3.0',
            'zeroprobe_probe_status{kind="k",service_id="a"} 2.0',
        ]
    )

    assert timed_out(metrics) == 5.0
