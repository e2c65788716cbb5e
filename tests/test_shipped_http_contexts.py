"""The shipped Prometheus and Alertmanager examples in contexts/: valid, documented, and served
by the demo's simulated APIs (what `zeroprobe demo` shows for them)."""

from __future__ import annotations

import time

import pytest

from schemas.context_spec import AlertmanagerAlertsSpec, PrometheusQuerySpec
from schemas.grading import Grade, Line
from tests.conftest import TESTS, EngineFactory
from zeroprobe.config.loader import ContextFile, load_contexts
from zeroprobe.simulators.monitoring import SimulatedMonitoring

CONTEXTS = TESTS.parent / "contexts"
ERROR_RATE = "payments.api.errorrate"
ALERTS = "payments.alerts.critical"
ENV = {
    "ZEROPROBE_CONNECTION_PROMETHEUS": "http://prometheus:9090",
    "ZEROPROBE_CONNECTION_ALERTMANAGER": "http://alertmanager:9093",
    "ZEROPROBE_CONNECTION_CLUSTERKEEPER": "mongodb://db1:27017/?replicaSet=rs0",
    # The sharded-cluster example (tests/test_shipped_mongo_contexts.py).
    "ZEROPROBE_CONNECTION_ORDERSMONGOS": "mongodb://mongos1:27017/",
    # The CI examples (tests/test_shipped_pipeline_contexts.py).
    "ZEROPROBE_CONNECTION_GITHUB": "https://api.github.com",
    "GITHUB_TOKEN": "t",
    "ZEROPROBE_CONNECTION_GITLAB": "https://gitlab.example.com",
    "GITLAB_TOKEN": "t",
    "ZEROPROBE_CONNECTION_JENKINS": "https://jenkins.example.com",
    "JENKINS_TOKEN": "u:t",
    # The web endpoint example (plugins/zeroprobe-http/tests/test_http_endpoint_demo.py).
    "ZEROPROBE_CONNECTION_SHOP_WEB": "https://shop.example.com",
}


@pytest.fixture(scope="module")
def shipped() -> dict[str, ContextFile]:
    report = load_contexts(CONTEXTS, ENV)
    assert [str(p) for p in report.problems] == []
    return {cf.spec.service_id: cf for cf in report.specs}


def test_examples_are_valid_and_carry_a_runbook(shipped: dict[str, ContextFile]) -> None:
    error_rate, alerts = shipped[ERROR_RATE], shipped[ALERTS]

    assert isinstance(error_rate.spec, PrometheusQuerySpec)
    assert error_rate.spec.connection == "prometheus"
    assert (error_rate.spec.thresholds.yellow, error_rate.spec.thresholds.red) == (0.01, 0.05)
    assert isinstance(alerts.spec, AlertmanagerAlertsSpec)
    assert alerts.spec.matchers == ['service="payments-api"', 'severity=~"critical|warning"']
    for context in (error_rate, alerts):
        assert context.path.endswith(".md")
        assert context.body.startswith("# ")
        assert "**Runbook.**" in context.body


@pytest.mark.parametrize(
    ("elapsed_s", "lines"),
    [
        (
            0,
            [
                Line("- payments-api 5xx ratio 0.004", Grade.GREEN),
                Line("- no active alerts", Grade.GREEN),
            ],
        ),
        (
            75,  # on the 3% plateau from 55 s to 95 s
            [
                Line("- payments-api 5xx ratio 0.03", Grade.YELLOW),
                Line(
                    "- [warning] HighErrorRate payments-api (firing 25s, 3 instances): "
                    "5xx ratio of payments-api at 3.0%",
                    Grade.YELLOW,
                ),
            ],
        ),
        (
            120,
            [
                Line("- payments-api 5xx ratio 0.08", Grade.RED),
                Line(
                    "- [critical] HighErrorRate payments-api (firing 1m, 3 instances): "
                    "5xx ratio of payments-api at 8.0%",
                    Grade.RED,
                ),
            ],
        ),
    ],
    ids=["green", "yellow", "red"],
)
async def test_examples_against_the_demo_apis(
    shipped: dict[str, ContextFile],
    make_engine: EngineFactory,
    elapsed_s: float,
    lines: list[Line],
) -> None:
    # A drift that began `elapsed_s` ago; the runs take far less than a second of it.
    with SimulatedMonitoring(started_s=time.time() - elapsed_s) as monitoring:
        environ = {
            "ZEROPROBE_CONNECTION_PROMETHEUS": monitoring.url,
            "ZEROPROBE_CONNECTION_ALERTMANAGER": monitoring.url,
        }
        engine = make_engine([shipped[ERROR_RATE].spec, shipped[ALERTS].spec], environ)
        try:
            error_rate = await engine.run_once(ERROR_RATE)
            alerts = await engine.run_once(ALERTS)
        finally:
            await engine.stop()

    assert [*error_rate.lines, *alerts.lines] == lines
