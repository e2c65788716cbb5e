"""The soak and burst scripts still run (a tiny set, seconds), and their analysis is right.

`make soak` runs bench/soak.py for 10 minutes and bench/failing_burst.py with 1,000 probes;
here they run for a few seconds so they cannot rot, and the functions that turn what they
recorded into figures are checked on hand-made records.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.failing_burst import cluster_start, gc_stats, next_at, profile_shares, window_stats
from bench.soak import (
    FaultEvent,
    Sample,
    cycle_faults,
    document_status,
    event_recovery_s,
    fault_starts,
    final_recovery,
    gc_pauses,
    parse_wrk,
    percentile,
    red_seen,
    replace_section,
    row_samples,
    unexpected_non_green,
)

ROOT = Path(__file__).resolve().parent.parent


def test_soak_runs_with_a_tiny_set(tmp_path: Path) -> None:
    out, raw = tmp_path / "reliability.md", tmp_path / "soak.json"
    out.write_text("# Reliability\n\nHand-written text.\n")
    args = [
        *("--duration", "15", "--sets", "2", "--specs-per-set", "2", "--http-specs", "1"),
        *("--interval", "2s", "--timeout", "1s", "--warmup", "2", "--cycle", "6"),
        *("--fault", "4", "--tail", "5", "--grace", "4", "--recover-wait", "10"),
        *("--row-every", "5", "--connections", "2", "--delay-ms", "5", "--nice", "0"),
        *("--out", str(out), "--json", str(raw), "--workdir", str(tmp_path / "work")),
    ]
    subprocess.run([sys.executable, "-m", "bench.soak", *args], cwd=ROOT, check=True, timeout=55)
    result = json.loads(raw.read_text())
    text = out.read_text()
    assert text.startswith("# Reliability\n\nHand-written text.\n")
    assert "<!-- soak:begin -->" in text
    assert "### Verdicts" in text
    assert result["specs"] == 2 * 2 + 1 + 1 + 3
    # A PUT answers from memory whatever the targets do.
    assert result["wrk"]["requests"] > 0
    assert result["wrk"]["non200"] == 0
    assert result["poller"]["puts"] > 0
    assert result["poller"]["non200"] == 0
    # The faults happened: the stopped replica set's probes were seen RED.
    stopped = result["faults"]["replica set stopped (refused)"]
    assert stopped["events"] == 1
    assert stopped["red_seen"] > 0
    assert result["exit_code"] == 0


def test_failing_burst_runs_with_a_tiny_set(tmp_path: Path) -> None:
    out, raw = tmp_path / "reliability.md", tmp_path / "burst.json"
    args = [
        *("--specs", "20", "--interval", "4s", "--timeout", "3s", "--rate", "50"),
        *("--before", "1", "--hold", "0.5", "--refused", "1", "--burst-window", "1"),
        *("--nice", "0", "--out", str(out), "--json", str(raw)),
        *("--workdir", str(tmp_path / "work")),
    ]
    subprocess.run(
        [sys.executable, "-m", "bench.failing_burst", *args], cwd=ROOT, check=True, timeout=55
    )
    result = json.loads(raw.read_text())
    assert "<!-- burst:begin -->" in out.read_text()
    windows = result["windows"]
    assert sum(w["requests"] for w in windows.values()) > 0
    assert sum(w["non200"] for w in windows.values()) == 0
    # Probes waiting on a silent target failed when it dropped them (not all: with a 4 s
    # interval their runs are spread over the whole interval).
    assert result["red_after_release"] > 0


def test_fault_plan() -> None:
    assert fault_starts(600, 30, 30, 15, 60) == [30.0 + 30 * k for k in range(17)]
    assert fault_starts(15, 2, 6, 4, 5) == [2.0]
    assert fault_starts(10, 8, 6, 4, 5) == []
    faults = cycle_faults(1, ["a", "b", "c"], ["prom", "am"])
    assert faults == [
        ("b", "down", None, "replica set stopped (refused)"),
        ("c", "hang", None, "replica set hangs"),
        ("a", "down", (2,), "one secondary stopped"),
        ("am", "down", None, "HTTP API stopped (refused)"),
    ]
    assert cycle_faults(0, ["a"], [])[0][:2] == ("a", "down")


OBS = {
    "x": [(0.0, "GREEN"), (11.0, "RED"), (12.0, "RED"), (21.0, "GREEN"), (22.0, "GREEN")],
    "y": [(0.0, "GREEN"), (11.0, "GREEN"), (16.0, "RED"), (24.0, "RED"), (25.0, "GREEN")],
    "z": [(0.0, "GREEN"), (13.0, "YELLOW"), (30.0, "GREEN")],
}
EVENT = FaultEvent("set", "down", start_s=10.0, end_s=20.0, ids=("x", "y"))


def test_red_seen_and_recovery_after_a_fault() -> None:
    assert red_seen(OBS, EVENT, grace_s=0) == 2
    late = FaultEvent("set", "down", start_s=13.0, end_s=15.0, ids=("x", "y"))
    assert red_seen(OBS, late, grace_s=0) == 0
    assert red_seen(OBS, late, grace_s=1) == 1
    assert event_recovery_s(OBS, EVENT) == 5.0
    assert event_recovery_s({"x": [(0.0, "RED")]}, EVENT) is None


def test_final_recovery_and_unexpected_colours() -> None:
    assert final_recovery(OBS, since_s=20.0) == (5.0, [])  # y: RED at 24 s, GREEN at 25 s
    assert final_recovery({**OBS, "w": [(1.0, "GREEN"), (2.0, "HTTP 503")]}, 20.0) == (None, ["w"])
    # z turned YELLOW though no fault touched it; y's RED at 24 s is outside 20 s + 2 s.
    assert unexpected_non_green(OBS, [EVENT], grace_s=2.0, after_s=0.0) == 2
    assert unexpected_non_green(OBS, [EVENT], grace_s=5.0, after_s=0.0) == 1
    assert unexpected_non_green(OBS, [EVENT], grace_s=5.0, after_s=14.0) == 0


def test_wrk_summary_documents_and_sections() -> None:
    out = 'Running 1s test\nSOAK {"requests": 10, "ok": 9, "non200": 1, "p99_us": 2500}\n'
    assert parse_wrk(out) == {"requests": 10, "ok": 9, "non200": 1, "p99_us": 2500}
    with pytest.raises(ValueError, match="no SOAK summary"):
        parse_wrk("wrk: connection refused\n")
    assert document_status(b'{"a.b": {"status": "RED", "timestamp": 1}}', "a.b") == "RED"
    assert document_status(b'{"error": "no"}', "a.b") == "bad document"
    text = "# R\n\nintro\n"
    once = replace_section(text, "soak", "## Soak\nfirst")
    assert once == "# R\n\nintro\n\n<!-- soak:begin -->\n## Soak\nfirst\n<!-- soak:end -->\n"
    twice = replace_section(once + "outro\n", "soak", "## Soak\nsecond\n")
    assert twice == (
        "# R\n\nintro\n\n<!-- soak:begin -->\n## Soak\nsecond\n<!-- soak:end -->\noutro\n"
    )


def test_percentiles_and_windows() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert math.isnan(percentile([], 0.5))
    records = [(float(t), float(t % 7), 200 if t != 5 else 503, 1.0) for t in range(10)]
    got = window_stats(records, 2.0, 6.0)
    assert got["requests"] == 4
    assert got["non200"] == 1
    assert got["max_ms"] == 5.0
    assert got["control_max_ms"] == 1.0


def test_where_runs_start_in_an_interval() -> None:
    # Runs start between 28 s and 3 s (mod 30): the cluster wraps around the interval.
    assert cluster_start([28.0, 29.5, 61.0, 93.0], 30.0) == (28.0, 5.0)
    assert cluster_start([10.0, 12.0, 11.0], 30.0) == (10.0, 2.0)
    assert next_at(28.0, 30.0, not_before_s=100.0) == 118.0
    assert next_at(28.0, 30.0, not_before_s=118.0) == 118.0


def test_memory_table_rows() -> None:
    samples = [Sample(t, 0, 0.0, 0, 0.0) for t in (0.0, 5.0, 31.8, 35.0, 62.6, 90.0, 90.4)]
    assert [s.t_s for s in row_samples(samples, 30)] == [0.0, 31.8, 62.6, 90.4]
    assert [s.t_s for s in row_samples(samples[:4], 30)] == [0.0, 31.8, 35.0]


def test_gc_pauses_and_profile_shares() -> None:
    log = (
        "2026-11-22T06:00:00+0000 WARNING zeroprobe.engine.runner: a: GREEN -> RED: refused\n"
        "gc-pause gen=2 ms=47.9 at=100.250\n"
        "gc-pause gen=1 ms=5.1 at=130.000\n"
    )
    pauses = gc_pauses(log)
    assert pauses == [(2, 47.9, 100.25), (1, 5.1, 130.0)]
    assert gc_stats(pauses, 100.0, 120.0) == {"gc_pauses": 1, "gc_max_ms": 47.9}
    assert gc_stats(pauses, 0.0, 50.0) == {"gc_pauses": 0, "gc_max_ms": 0.0}
    raw = (
        "run (a.py:1);EpollSelector.select (selectors.py:468) 30\n"
        "run (a.py:1);ProbeRunner.run (runner.py:57);Logger.log (logging/__init__.py:1) 5\n"
        "run (a.py:1);ProbeRunner.run (runner.py:57);start_connection (aiohappyeyeballs/x:1) 10\n"
        "run (a.py:1);ProbeRunner.run (runner.py:82) 4\n"
        "run (a.py:1);Handle._run (events.py:80) 1\n"
    )
    assert profile_shares(raw) == [
        ("waiting for events (epoll)", 30),
        ("probe runs' requests to the targets (connect attempts, failures)", 10),
        ("logging a probe's change of colour", 5),
        ("the rest of probe runs (result, grade, metrics)", 4),
        ("other (asyncio, aiohttp internals)", 1),
    ]
