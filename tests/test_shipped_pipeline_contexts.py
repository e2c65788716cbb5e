"""The shipped CI examples in contexts/ (one per provider): valid, documented, and served by
the demo's simulated CI APIs (what `zeroprobe demo` shows for them)."""

from __future__ import annotations

import pytest

from schemas.context_spec import PipelineHealthSpec
from schemas.grading import Grade, Line
from tests.conftest import TESTS, EngineFactory
from tests.test_shipped_http_contexts import ENV
from zeroprobe.config.loader import load_contexts
from zeroprobe.simulators.pipelines import SimulatedPipelines

CONTEXTS = TESTS.parent / "contexts"
EXAMPLES = {
    "shop.ci.github": ("github", "GITHUB_TOKEN"),
    "shop.ci.gitlab": ("gitlab", "GITLAB_TOKEN"),
    "shop.ci.jenkins": ("jenkins", "JENKINS_TOKEN"),
}
# The demo's story (zeroprobe/simulators/pipelines.py): #1207 running for 6m; #1206 failed,
# started 30m ago and took 11m; #1205 failed; #1204 succeeded, 140m ago in 10m.
DETAILS = "failed 19m ago (2 in a row, last success 2h10m ago)"
HINT = "— hint: out of memory (exit 137)"


def shipped() -> dict[str, PipelineHealthSpec]:
    report = load_contexts(CONTEXTS, ENV)
    assert [str(p) for p in report.problems] == []
    specs = {
        cf.spec.service_id: cf for cf in report.specs if isinstance(cf.spec, PipelineHealthSpec)
    }
    assert sorted(specs) == sorted(EXAMPLES)
    for context in specs.values():
        assert context.path.endswith(".md")
        assert context.body.startswith("# ")
        assert "**Runbook.**" in context.body
    return {sid: cf.spec for sid, cf in specs.items() if isinstance(cf.spec, PipelineHealthSpec)}


def test_one_example_per_provider_with_its_token_variable() -> None:
    specs = shipped()
    assert {sid: (s.provider, s.token_env) for sid, s in specs.items()} == EXAMPLES
    assert specs["shop.ci.github"].hints[0].hint == "terraform state is locked"


@pytest.mark.parametrize(
    ("service_id", "line"),
    [
        (
            "shop.ci.github",
            f"- main: run #1206 {DETAILS} https://github.example/actions/runs/91206 {HINT}",
        ),
        (
            "shop.ci.gitlab",
            f"- main: run #1206 {DETAILS} https://gitlab.example/-/pipelines/1206 {HINT}",
        ),
        (
            "shop.ci.jenkins",
            f"- shop/main: run #1206 {DETAILS} https://jenkins.example/job/demo/1206/ {HINT}",
        ),
    ],
)
async def test_the_demo_serves_each_example(
    make_engine: EngineFactory, service_id: str, line: str
) -> None:
    spec = shipped()[service_id]
    with SimulatedPipelines() as pipelines:
        environ = {
            f"ZEROPROBE_CONNECTION_{spec.provider.upper()}": pipelines.url,
            EXAMPLES[service_id][1]: "demo:token",
        }
        engine = make_engine([spec], environ)
        try:
            result = await engine.run_once(service_id)
        finally:
            await engine.stop()
    assert list(result.lines) == [Line(line, Grade.YELLOW)]
