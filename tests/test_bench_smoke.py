"""The benchmark scripts still run (tiny sizes, a few seconds); `make bench` runs them for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.common import _latency, histogram, minus, quantile

ROOT = Path(__file__).resolve().parent.parent

WRK_LATENCY = """  Latency Distribution
     50%  512.00us
     75%    1.10ms
     99%    2.50ms
"""


def test_bench_runs_on_tiny_sizes(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    args = ["-m", "bench.main", "--tiny", "--only", "startup,overhead", "--out", str(out)]
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, timeout=30)
    text = out.read_text()
    assert "## Start-up and memory" in text
    assert "## Probe overhead" in text
    assert "| CPU cores |" in text


def test_wrk_latency_and_histogram_quantiles_parse() -> None:
    assert _latency(WRK_LATENCY, "50%") == 0.512
    assert _latency(WRK_LATENCY, "99%") == 2.5
    text = "\n".join(
        f'zeroprobe_probe_start_delay_seconds_bucket{{le="{le}"}} {n}'
        for le, n in (("0.001", 90.0), ("0.01", 99.0), ("+Inf", 100.0))
    )
    buckets = histogram(text, "zeroprobe_probe_start_delay_seconds")
    assert quantile(buckets, 0.5) == 0.001
    assert quantile(buckets, 0.99) == 0.01
    assert (
        quantile(minus(buckets, [(0.001, 90.0), (0.01, 90.0), (float("inf"), 90.0)]), 0.5) == 0.01
    )


def test_the_notification_storm_benchmark_runs_and_sends_one_message_per_sink(
    tmp_path: Path,
) -> None:
    out = tmp_path / "benchmarks.md"
    args = ["-m", "bench.main", "--tiny", "--only", "notify", "--out", str(out)]
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, timeout=120)
    text = out.read_text()
    assert "## Notification storm" in text
    assert "| 50 (1 runs) | 1 / 1 / 1 |" in text  # one message per sink
