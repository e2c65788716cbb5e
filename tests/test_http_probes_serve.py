"""`zeroprobe serve` as a real process, probing a real Prometheus and Alertmanager.

The specs use only the documented keys, the URLs come from ZEROPROBE_CONNECTION_<LABEL>, and
the monitoring system's PUT gets the Zero Problem document of each.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.servers import AlertmanagerServer, Exporter, PrometheusServer, free_port
from tests.test_alertmanager_wire import fired
from tests.test_cli_process import ZEROPROBE, Proc, assert_document, clean_env, wait_for

QUERY_SPEC = """\
service_id: serve.prom.disk
kind: prometheus_query
connection: metrics-server
query: zp_serve_free_ratio
direction: below
thresholds: {yellow: 0.2, red: 0.1}
on_empty: RED
interval: 2s
timeout: 1s
"""

ALERTS_SPEC = """\
---
service_id: serve.am.payments
kind: alertmanager_alerts
connection: alerts
matchers:
  - test="serve"
  - severity=~"critical|warning"
interval: 2s
timeout: 1s
---
# payments alerts (runbook body)
"""


def test_serve_answers_for_both_kinds_against_the_real_servers(
    tmp_path: Path,
    exporter: Exporter,
    prometheus: PrometheusServer,
    alertmanager: AlertmanagerServer,
) -> None:
    exporter.set("zp_serve_free_ratio", {"disk": "sda"}, 0.15)
    prometheus.wait_for_values("zp_serve_free_ratio", {"sda": 0.15}, "disk")
    alertmanager.post_alerts(
        [fired("serve", "HighErrorRate", "critical", minutes_ago=12, summary="5xx above 5%")]
    )
    contexts = tmp_path / "contexts"
    contexts.mkdir()
    (contexts / "disk.yaml").write_text(QUERY_SPEC, encoding="utf-8")
    (contexts / "payments.md").write_text(ALERTS_SPEC, encoding="utf-8")
    port = free_port()
    env = clean_env(
        ZEROPROBE_CONNECTION_METRICS_SERVER=prometheus.url,
        ZEROPROBE_CONNECTION_ALERTS=alertmanager.url,
    )
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        popen = subprocess.Popen(
            [ZEROPROBE, "serve", "--contexts", str(contexts), "--port", str(port)],
            stdout=stdout,
            stderr=stderr,
            env=env,
        )
    proc = Proc(popen, out, err)
    try:
        disk, _ = wait_for(proc, port, "PUT", "/serve.prom.disk", timeout_s=20)
        alerts, _ = wait_for(proc, port, "PUT", "/serve.am.payments", timeout_s=20)
        code, _ = proc.stop()
    finally:
        if popen.poll() is None:
            popen.kill()
        popen.wait(timeout=10)

    disk_status = assert_document(disk, "serve.prom.disk")
    assert disk_status["status"] == "YELLOW"
    series = f'zp_serve_free_ratio{{disk="sda", instance="{exporter.address}", job="exporter"}}'
    assert disk_status["messages"][0]["actionBody"] == f"- {series} 0.15"
    alerts_status = assert_document(alerts, "serve.am.payments")
    assert alerts_status["status"] == "RED"
    assert alerts_status["messages"][0]["actionBody"] == (
        "- [critical] HighErrorRate payments-api (firing 12m, 1 instance): 5xx above 5%"
    )
    assert code == 0, proc.stderr
    assert "Traceback" not in proc.stderr
