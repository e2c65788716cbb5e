"""The shipped example contexts/shop.web.health.md: valid, documented, and served by the demo's
simulated web shop, whose /checkout drifts through every colour (what `zeroprobe demo` shows)."""

from __future__ import annotations

import re
import time

import pytest
from endpoint_helpers import REPO_CONTEXTS, run_once
from zeroprobe_http.spec import HttpEndpointSpec

from zeroprobe.config.loader import load_contexts
from zeroprobe.plugin import Grade, connection_env_var
from zeroprobe.simulators.endpoint import SimulatedEndpoint, demo_checkout_delay_s

EXAMPLE = "shop.web.health"


def shipped() -> HttpEndpointSpec:
    report = load_contexts(REPO_CONTEXTS, {"ZEROPROBE_CONNECTION_SHOP_WEB": "https://shop.example"})
    assert report.ok, [str(p) for p in report.problems]
    (context,) = [c for c in report.specs if c.spec.service_id == EXAMPLE]
    assert context.path.endswith(".md")
    assert context.body.startswith("# ")
    assert "**Runbook.**" in context.body
    assert isinstance(context.spec, HttpEndpointSpec)
    return context.spec


def test_the_example_is_valid_and_documented() -> None:
    spec = shipped()

    assert spec.connection == "shop-web"
    assert [check.name for check in spec.checks] == ["GET /health", "GET /checkout"]
    assert (spec.certificate.yellow_days, spec.certificate.red_days) == (21, 7)
    checkout = spec.checks[1]
    assert (checkout.response_time.yellow, checkout.response_time.red) == (1.0, 2.5)


@pytest.mark.parametrize(
    ("elapsed_s", "delay_s"),
    [(0, 0.08), (45, 0.08), (75, 1.5), (120, 3.2), (165, 1.5), (220, 0.08), (240 + 120, 3.2)],
    ids=["start", "green-plateau", "yellow", "red", "yellow-again", "green-again", "next-cycle"],
)
def test_the_checkout_drifts_every_four_minutes(elapsed_s: float, delay_s: float) -> None:
    assert demo_checkout_delay_s(elapsed_s) == delay_s


@pytest.mark.parametrize(
    ("elapsed_s", "checkout", "grade"),
    [
        (0, r"200 in \d+ms", Grade.GREEN),
        (75, r"200 in 1\d{3}ms \(slower than 1s\)", Grade.YELLOW),
        (120, r"200 in 3\d{3}ms \(slower than 2.5s\)", Grade.RED),
    ],
    ids=["green", "yellow", "red"],
)
async def test_the_demo_serves_the_example_in_every_colour(
    elapsed_s: float, checkout: str, grade: Grade
) -> None:
    spec = shipped()
    with SimulatedEndpoint(started_s=time.time() - elapsed_s) as shop:
        result, _ = await run_once(spec, {connection_env_var(spec.connection): shop.url})

    host = re.escape(f"127.0.0.1:{shop.port}")
    health, checkout_line = result.lines
    assert re.fullmatch(rf"- GET {host}/health 200 in \d+ms", health.text), health
    assert health.grade is Grade.GREEN
    assert re.fullmatch(rf"- GET {host}/checkout {checkout}", checkout_line.text), checkout_line
    assert checkout_line.grade is grade
    assert result.grade is grade
