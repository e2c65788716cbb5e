"""pipeline_health without a server: reading each provider's runs, grading rules, hints.

The contract (issue 4, README "CI pipeline health"): GREEN when the newest completed run
succeeded and nothing is stuck; YELLOW when it failed once, a run looks stuck (longer than
stuck_factor x the median successful run) or >= 30 % of the weighed runs failed; RED at
red_consecutive_failures in a row or no success for red_without_success. Cancelled and
skipped runs are not failures. Line: `- main: run #1234 failed 12m ago (3 in a row, last
success 5h ago) https://… — hint: …`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from probes.errors import ProbeReplyError
from probes.pipeline_health import (
    Outcome,
    PipelineObservation,
    Run,
    find_hint,
    grade_pipeline_health,
    measure_github_runs,
    measure_gitlab_pipelines,
    measure_jenkins_builds,
)
from schemas.context_spec import PipelineHealthSpec
from schemas.grading import Grade, Line
from tests.conftest import spec_factory

FIXTURES = Path(__file__).parent / "fixtures" / "pipeline"
NOW_MS = 1_800_000_000_000
MIN_MS = 60_000
HOUR_MS = 60 * MIN_MS

PipelineSpecFactory = Callable[..., PipelineHealthSpec]


@pytest.fixture
def make_pipeline_spec() -> PipelineSpecFactory:
    return spec_factory(
        PipelineHealthSpec,
        {
            "service_id": "test.ci.main",
            "kind": "pipeline_health",
            "provider": "github",
            "connection": "github",
            "repository": "acme/shop",
            "workflow": "ci.yml",
        },
    )


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def run(
    number: int,
    outcome: Outcome,
    *,
    ended_min_ago: float,
    took_min: float = 10,
) -> Run:
    finished = NOW_MS - round(ended_min_ago * MIN_MS)
    return Run(
        number=number,
        outcome=outcome,
        url=f"https://ci.example/{number}",
        started_ms=finished - round(took_min * MIN_MS),
        finished_ms=finished,
    )


def running(number: int, *, started_min_ago: float) -> Run:
    return Run(
        number=number,
        outcome=Outcome.RUNNING,
        url=f"https://ci.example/{number}",
        started_ms=NOW_MS - round(started_min_ago * MIN_MS),
    )


def grade(spec: PipelineHealthSpec, *runs: Run, hint: str = "") -> list[Line]:
    return grade_pipeline_health(
        PipelineObservation(runs=runs, measured_at_ms=NOW_MS, hint=hint), spec
    )


S, F, C, K = Outcome.SUCCESS, Outcome.FAILED, Outcome.CANCELLED, Outcome.SKIPPED


# Reading the recorded replies --------------------------------------------------------------


def test_github_runs_read_status_and_conclusion() -> None:
    runs = measure_github_runs(recorded("github-runs.json"))
    assert [(r.number, r.outcome) for r in runs] == [
        (1235, Outcome.RUNNING),
        (1234, F),
        (1233, C),
        (1232, F),
        (1231, F),
        (1230, S),
        (1229, S),
    ]
    newest_failed = runs[1]
    assert newest_failed.url == "https://github.com/acme/shop/actions/runs/30433642"
    assert newest_failed.run_id == "30433642"
    # run_started_at 02:38:00Z .. updated_at 02:48:00Z
    assert newest_failed.duration_ms == 10 * MIN_MS
    assert runs[0].finished_ms is None


def test_gitlab_pipelines_read_status_values() -> None:
    runs = measure_gitlab_pipelines(recorded("gitlab-pipelines.json"))
    assert [(r.number, r.outcome) for r in runs] == [
        (2087, Outcome.OTHER),  # manual
        (2086, F),
        (2085, K),
        (2084, C),  # GitLab spells it "canceled"
        (2083, S),
        (2082, S),
    ]
    assert runs[1].url == "https://gitlab.example.com/shop/api/-/pipelines/2086"
    assert runs[1].run_id == "2086"


def test_jenkins_builds_read_result_building_and_epoch_ms() -> None:
    runs = measure_jenkins_builds(recorded("jenkins-builds.json"))
    assert [(r.number, r.outcome) for r in runs] == [
        (58, Outcome.RUNNING),
        (57, S),
        (56, C),  # ABORTED
        (55, S),
        (54, F),
        (53, S),
    ]
    assert runs[1].started_ms == 1_795_308_000_000  # 2026-11-22T00:40:00Z
    assert runs[1].duration_ms == 600_000
    assert runs[1].url == "https://jenkins.example.com/job/shop/job/main/57/"


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        ("SUCCESS", S),
        ("FAILURE", F),
        ("UNSTABLE", F),
        ("ABORTED", C),
        ("NOT_BUILT", K),
    ],
)
def test_jenkins_result_values(result: str, outcome: Outcome) -> None:
    (build,) = measure_jenkins_builds(
        {"builds": [{"number": 1, "result": result, "building": False, "timestamp": 1}]}
    )
    assert build.outcome is outcome


@pytest.mark.parametrize(
    ("conclusion", "outcome"),
    [("success", S), ("failure", F), ("timed_out", F), ("cancelled", C), ("skipped", K)],
)
def test_github_conclusions(conclusion: str, outcome: Outcome) -> None:
    (item,) = measure_github_runs(
        {"workflow_runs": [{"run_number": 7, "status": "completed", "conclusion": conclusion}]}
    )
    assert item.outcome is outcome


@pytest.mark.parametrize(
    ("reader", "data"),
    [
        (measure_github_runs, {"message": "Not Found"}),
        (measure_gitlab_pipelines, {"message": "404 Project Not Found"}),
        (measure_jenkins_builds, []),
    ],
    ids=["github", "gitlab", "jenkins"],
)
def test_unreadable_replies(reader: Callable[[Any], Any], data: Any) -> None:
    with pytest.raises(ProbeReplyError, match="unreadable reply"):
        reader(data)


# Grading -----------------------------------------------------------------------------------


def test_newest_success_is_green(make_pipeline_spec: PipelineSpecFactory) -> None:
    lines = grade(make_pipeline_spec(), run(41, S, ended_min_ago=5), run(40, S, ended_min_ago=65))
    assert lines == [Line("- main: run #41 succeeded 5m ago https://ci.example/41", Grade.GREEN)]


def test_one_failure_is_yellow(make_pipeline_spec: PipelineSpecFactory) -> None:
    lines = grade(
        make_pipeline_spec(),
        run(42, F, ended_min_ago=12),
        *[run(41 - i, S, ended_min_ago=300 + i * 60) for i in range(4)],
    )
    assert lines == [
        Line(
            "- main: run #42 failed 12m ago (1 in a row, last success 5h ago) "
            "https://ci.example/42",
            Grade.YELLOW,
        )
    ]


@pytest.mark.parametrize(
    ("in_a_row", "threshold", "expected"),
    [(2, 3, Grade.YELLOW), (3, 3, Grade.RED), (4, 3, Grade.RED), (1, 1, Grade.RED)],
)
def test_consecutive_failures_boundary(
    make_pipeline_spec: PipelineSpecFactory, in_a_row: int, threshold: int, expected: Grade
) -> None:
    failures = [run(100 - i, F, ended_min_ago=10 + i) for i in range(in_a_row)]
    successes = [run(50 - i, S, ended_min_ago=60 + i) for i in range(20)]
    (line,) = grade(
        make_pipeline_spec(red_consecutive_failures=threshold, yellow_failure_rate=1),
        *failures,
        *successes,
    )
    assert line.grade is expected
    assert f"({in_a_row} in a row, last success 1h ago)" in line.text


def test_the_issue_example_line(make_pipeline_spec: PipelineSpecFactory) -> None:
    runs = [
        run(1234, F, ended_min_ago=12),
        run(1233, F, ended_min_ago=100),
        run(1232, F, ended_min_ago=200),
        *[run(1231 - i, S, ended_min_ago=300 + i) for i in range(10)],
    ]
    (line,) = grade(make_pipeline_spec(), *runs, hint="out of memory (exit 137)")
    assert line == Line(
        "- main: run #1234 failed 12m ago (3 in a row, last success 5h ago) "
        "https://ci.example/1234 — hint: out of memory (exit 137)",
        Grade.RED,
    )


@pytest.mark.parametrize(
    ("success_min_ago", "expected"),
    [(24 * 60 - 1, Grade.YELLOW), (24 * 60, Grade.RED)],
    ids=["just-under-24h", "24h"],
)
def test_no_success_for_red_without_success(
    make_pipeline_spec: PipelineSpecFactory, success_min_ago: int, expected: Grade
) -> None:
    runs = [
        run(9, F, ended_min_ago=5),
        *[run(8 - i, S, ended_min_ago=success_min_ago + i, took_min=1) for i in range(8)],
    ]
    (line,) = grade(make_pipeline_spec(), *runs)
    assert line.grade is expected


def test_red_without_success_is_configurable(make_pipeline_spec: PipelineSpecFactory) -> None:
    runs = [run(9, F, ended_min_ago=5), *[run(8 - i, S, ended_min_ago=121) for i in range(8)]]
    (line,) = grade(make_pipeline_spec(red_without_success="2h"), *runs)
    assert line.grade is Grade.RED


def test_no_success_among_the_runs_read(make_pipeline_spec: PipelineSpecFactory) -> None:
    (line,) = grade(make_pipeline_spec(red_consecutive_failures=5), run(2, F, ended_min_ago=3))
    assert line.grade is Grade.YELLOW
    assert "(1 in a row, no success in the last 1 runs)" in line.text


@pytest.mark.parametrize(
    ("failed", "expected"),
    [(5, Grade.GREEN), (6, Grade.YELLOW)],
    ids=["25%", "30%"],
)
def test_failure_rate_of_30_percent_is_yellow(
    make_pipeline_spec: PipelineSpecFactory, failed: int, expected: Grade
) -> None:
    runs = [run(100, S, ended_min_ago=1)] + [
        run(99 - i, F if i < failed else S, ended_min_ago=10 + i) for i in range(19)
    ]
    # The 20 weighed runs: 1 + 19; 6 failures = 30 %. Older runs are not weighed.
    older = [run(10 - i, F, ended_min_ago=500 + i) for i in range(5)]
    (line,) = grade(make_pipeline_spec(runs=20), *runs, *older)
    assert line.grade is expected
    if expected is Grade.YELLOW:
        assert "(30% of the last 20 runs failed)" in line.text


def test_cancelled_and_skipped_runs_are_not_failures(
    make_pipeline_spec: PipelineSpecFactory,
) -> None:
    runs = [
        run(7, C, ended_min_ago=1),
        run(6, K, ended_min_ago=2),
        run(5, S, ended_min_ago=3),
        run(4, C, ended_min_ago=4),
        run(3, F, ended_min_ago=5),
        run(2, C, ended_min_ago=6),
        run(1, F, ended_min_ago=7),
        run(0, S, ended_min_ago=8),
    ]
    (line,) = grade(make_pipeline_spec(red_consecutive_failures=2, yellow_failure_rate=0.6), *runs)
    assert line == Line("- main: run #5 succeeded 3m ago https://ci.example/5", Grade.GREEN)
    # Failures separated by cancelled runs still count in a row.
    (line,) = grade(make_pipeline_spec(red_consecutive_failures=2), *runs[4:])
    assert line.grade is Grade.RED
    assert "(2 in a row" in line.text


def test_only_cancelled_runs_is_yellow_not_green(
    make_pipeline_spec: PipelineSpecFactory,
) -> None:
    assert grade(make_pipeline_spec(), run(3, C, ended_min_ago=1)) == [
        Line("- main: no completed run among the recent runs", Grade.YELLOW)
    ]
    assert grade(make_pipeline_spec()) == [
        Line("- main: no runs among the recent runs", Grade.YELLOW)
    ]


@pytest.mark.parametrize(
    ("running_min", "stuck"),
    [(30, False), (31, True)],
    ids=["3x-median", "just-over"],
)
def test_a_run_longer_than_3x_the_median_success_looks_stuck(
    make_pipeline_spec: PipelineSpecFactory, running_min: int, stuck: bool
) -> None:
    runs = [
        running(50, started_min_ago=running_min),
        run(49, S, ended_min_ago=40, took_min=10),
        run(48, S, ended_min_ago=60, took_min=8),
        run(47, S, ended_min_ago=80, took_min=12),
        run(46, F, ended_min_ago=100, took_min=90),  # failures do not count for the median
    ]
    lines = grade(make_pipeline_spec(yellow_failure_rate=1), *runs)
    assert lines[0] == Line("- main: run #49 succeeded 40m ago https://ci.example/49", Grade.GREEN)
    if stuck:
        assert lines[1:] == [
            Line(
                "- main: run #50 looks stuck: running for 31m, median successful run 10m "
                "https://ci.example/50",
                Grade.YELLOW,
            )
        ]
    else:
        assert lines[1:] == []


def test_stuck_factor_is_configurable(make_pipeline_spec: PipelineSpecFactory) -> None:
    runs = [running(50, started_min_ago=21), run(49, S, ended_min_ago=40, took_min=10)]
    assert len(grade(make_pipeline_spec(stuck_factor=2), *runs)) == 2
    assert len(grade(make_pipeline_spec(stuck_factor=3), *runs)) == 1


def test_jenkins_lines_name_the_job(make_pipeline_spec: PipelineSpecFactory) -> None:
    spec = make_pipeline_spec(provider="jenkins", repository=None, workflow=None, job="shop/main")
    assert grade(spec, run(8, S, ended_min_ago=2)) == [
        Line("- shop/main: run #8 succeeded 2m ago https://ci.example/8", Grade.GREEN)
    ]


def test_a_stale_result_says_so(make_pipeline_spec: PipelineSpecFactory) -> None:
    observation = PipelineObservation(
        runs=(run(8, S, ended_min_ago=2),),
        measured_at_ms=NOW_MS,
        stale="GitHub rate limit, retrying after 04:10:00 UTC",
    )
    assert grade_pipeline_health(observation, make_pipeline_spec()) == [
        Line(
            "- main: run #8 succeeded 2m ago https://ci.example/8 "
            "[stale: GitHub rate limit, retrying after 04:10:00 UTC]",
            Grade.GREEN,
        )
    ]


# Hints -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("log", "hint"),
    [
        ("Killed\n##[error]Process completed with exit code 137.", "out of memory (exit 137)"),
        ("FATAL ERROR: Reached heap limit JavaScript heap out of memory", "out of memory"),
        ("java.lang.OutOfMemoryError: Java heap space", "out of memory"),
        ("OSError: [Errno 28] No space left on device", "disk full (No space left on device)"),
        ("Error: ENOENT: no such file or directory, open 'dist/app.js'", "file not found (ENOENT)"),
        ("npm ERR! code ETIMEDOUT", "connection timeout"),
        ("dial tcp 10.0.0.5:5432: connect: connection timed out", "connection timeout"),
        ("Error: Cannot find module 'express'\n  code: 'MODULE_NOT_FOUND'", "missing module"),
        ("ModuleNotFoundError: No module named 'requests'", "missing module"),
        ("FAILED tests/test_api.py::test_login - AssertionError", "failing tests"),
        ("=========== 3 failed, 120 passed in 9.1s ===========", "failing tests"),
        ("Tests run: 40, Failures: 2, Errors: 0, Skipped: 0", "failing tests"),
        ("error: linker `cc` not found\nexit status 1", ""),
    ],
)
def test_builtin_hints(log: str, hint: str) -> None:
    assert find_hint(log) == hint


def test_custom_hints_come_before_the_builtins() -> None:
    custom = [(r"terraform.*state lock", "terraform state locked")]
    log = "Error acquiring the terraform state lock\nexit code 137"
    assert find_hint(log, custom) == "terraform state locked"
    assert find_hint("exit code 137", custom) == "out of memory (exit 137)"


def test_a_hint_is_shown_only_for_a_failed_run(make_pipeline_spec: PipelineSpecFactory) -> None:
    (line,) = grade(make_pipeline_spec(), run(3, S, ended_min_ago=1), hint="out of memory")
    assert "hint" not in line.text


# Spec validation ---------------------------------------------------------------------------


def test_defaults(make_pipeline_spec: PipelineSpecFactory) -> None:
    spec = make_pipeline_spec()
    assert (spec.branch, spec.runs, spec.red_consecutive_failures) == ("main", 20, 3)
    assert (spec.red_without_success, spec.stuck_factor, spec.yellow_failure_rate) == (
        86400.0,
        3.0,
        0.3,
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"workflow": None}, "workflow\n  Value error, required with provider github"),
        ({"project": "shop/api"}, "project\n  Value error, is for provider gitlab"),
        ({"repository": "shop"}, "'shop' is not owner/name"),
        ({"token_env": "ghp_abc-123"}, "never the token itself"),
        ({"hints": [{"pattern": "(oom", "hint": "x"}]}, "is not a valid regular expression"),
        ({"provider": "circleci"}, "Input should be 'github', 'gitlab' or 'jenkins'"),
    ],
)
def test_invalid_specs(
    make_pipeline_spec: PipelineSpecFactory, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        make_pipeline_spec(**fields)
    assert message in str(caught.value)


def test_numeric_project_and_workflow_ids_are_accepted(
    make_pipeline_spec: PipelineSpecFactory,
) -> None:
    assert make_pipeline_spec(workflow=161335).workflow == "161335"
    gitlab = make_pipeline_spec(provider="gitlab", repository=None, workflow=None, project=278964)
    assert gitlab.project == "278964"
