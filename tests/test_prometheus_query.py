"""prometheus_query without a server: grading bands, lines, templates and reply reading.

Expectations come from the contract (README "Prometheus query"): above: GREEN [.., yellow),
YELLOW [yellow, red), RED [red, ..); below (yellow > red): RED (.., red], YELLOW (red, yellow],
GREEN (yellow, ..). NaN and ±Inf are YELLOW naming the series. Worst first, capped.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from probes.errors import ProbeReplyError
from probes.http_client import HttpReply
from probes.prometheus_query import (
    QueryObservation,
    Sample,
    format_number,
    grade_prometheus_query,
    measure_query_reply,
)
from schemas.grading import Grade, Line
from schemas.line_template import parse_template, render_template
from tests.conftest import QuerySpecFactory


def series(value: float, **labels: str) -> Sample:
    return Sample(tuple(sorted(labels.items())), value)


def vector(*samples: Sample, warnings: tuple[str, ...] = ()) -> QueryObservation:
    return QueryObservation("vector", samples, warnings)


# Bands --------------------------------------------------------------------------------------

ABOVE = [
    (-5.0, Grade.GREEN),
    (0.0, Grade.GREEN),
    (9.999, Grade.GREEN),
    (10.0, Grade.YELLOW),
    (19.999, Grade.YELLOW),
    (20.0, Grade.RED),
    (1e9, Grade.RED),
]
BELOW = [  # yellow 20, red 10: smaller is worse
    (1e9, Grade.GREEN),
    (20.001, Grade.GREEN),
    (20.0, Grade.YELLOW),
    (10.001, Grade.YELLOW),
    (10.0, Grade.RED),
    (0.0, Grade.RED),
    (-3.0, Grade.RED),
]


@pytest.mark.parametrize(("value", "grade"), ABOVE, ids=[f"above-{v:g}" for v, _ in ABOVE])
def test_direction_above_bands(
    make_query_spec: QuerySpecFactory, value: float, grade: Grade
) -> None:
    spec = make_query_spec(line="- {value}")

    assert grade_prometheus_query(vector(series(value)), spec) == [
        Line(f"- {format_number(value)}", grade)
    ]


@pytest.mark.parametrize(("value", "grade"), BELOW, ids=[f"below-{v:g}" for v, _ in BELOW])
def test_direction_below_bands(
    make_query_spec: QuerySpecFactory, value: float, grade: Grade
) -> None:
    spec = make_query_spec(direction="below", thresholds={"yellow": 20, "red": 10}, line="{value}")

    (line,) = grade_prometheus_query(vector(series(value)), spec)

    assert line.grade is grade


def test_negative_thresholds_work_in_the_query_unit(make_query_spec: QuerySpecFactory) -> None:
    spec = make_query_spec(thresholds={"yellow": -10, "red": -5}, line="- {case}")
    obs = vector(series(-11, case="a"), series(-10, case="b"), series(-5, case="c"))

    assert grade_prometheus_query(obs, spec) == [
        Line("- c", Grade.RED),
        Line("- b", Grade.YELLOW),
        Line("- a", Grade.GREEN),
    ]


# Lines --------------------------------------------------------------------------------------


def test_default_line_writes_the_series_as_promql_does(make_query_spec: QuerySpecFactory) -> None:
    obs = vector(series(0.052300000000000006, __name__="http_errors", job="api", code="500"))

    assert grade_prometheus_query(obs, make_query_spec()) == [
        Line('- http_errors{code="500", job="api"} 0.0523', Grade.GREEN)
    ]


def test_default_line_of_series_without_name_or_labels(make_query_spec: QuerySpecFactory) -> None:
    obs = vector(series(12, job="api"), series(3))

    assert [line.text for line in grade_prometheus_query(obs, make_query_spec())] == [
        '- {job="api"} 12',
        "- {} 3",
    ]


def test_scalar_result_is_one_line(make_query_spec: QuerySpecFactory) -> None:
    obs = QueryObservation("scalar", (Sample((), 25.5),))

    assert grade_prometheus_query(obs, make_query_spec()) == [Line("- scalar 25.5", Grade.RED)]


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("- {service} error rate {value}", "- payments error rate 0.5"),
        ("{service}: {value}", "- payments: 0.5"),
        ("- {missing}|{value}", "- |0.5"),
        ("- {{literal}} {value}", "- {literal} 0.5"),
        ("- { service } {value}", "- payments 0.5"),
        ("- {labels}", '- {evil="{value}", service="payments"}'),
        ("- {evil}", "- {value}"),
    ],
    ids=[
        "labels",
        "dash-added",
        "missing-label-empty",
        "literal-braces",
        "spaces",
        "all",
        "no-reexpansion",
    ],
)
def test_line_template(make_query_spec: QuerySpecFactory, template: str, text: str) -> None:
    obs = vector(series(0.5, service="payments", evil="{value}"))

    assert grade_prometheus_query(obs, make_query_spec(line=template)) == [Line(text, Grade.GREEN)]


def test_a_line_break_in_a_label_value_stays_on_one_line(make_query_spec: QuerySpecFactory) -> None:
    obs = vector(series(1, note="two\nlines"))

    (line,) = grade_prometheus_query(obs, make_query_spec(line="- {note} {value}"))

    assert line.text == "- two lines 1"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("- {value:.2f}", "unknown placeholder '{value:.2f}'"),
        ("- {labels.job}", "unknown placeholder '{labels.job}'"),
        ("- {labels[0]}", "unknown placeholder '{labels[0]}'"),
        ("- {0}", "unknown placeholder '{0}'"),
        ("- {}", "unknown placeholder '{}'"),
        ("- {value!r}", "unknown placeholder '{value!r}'"),
        ("- {value", "unmatched '{' at position 3"),
        ("- value}", "unmatched '}' at position 8"),
    ],
)
def test_unusable_placeholders_are_refused(template: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_template(template)
    assert str(raised.value).startswith(message)


def test_template_rendering_is_plain_substitution() -> None:
    template = parse_template("{a}-{b}-{{a}}")

    assert render_template(template, {"a": "{b}", "b": "x"}) == "{b}-x-{a}"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.052300000000000006, "0.0523"),
        (0.1 + 0.2, "0.3"),
        (5.0, "5"),
        (-2.0, "-2"),
        (0.0, "0"),
        (1234.5678, "1234.57"),
        (99.95, "99.95"),
        (0.0001, "0.0001"),
        (0.0000123, "1.23e-05"),
        (1234567.0, "1234567"),
        (1234567.89, "1234568"),
        (2.5e20, "2.5e+20"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
    ],
    ids=repr,
)
def test_numbers_are_written_readably(value: float, text: str) -> None:
    assert format_number(value) == text


# Not numbers, no data, many series ------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["NaN", "+Inf", "-Inf"])
@pytest.mark.parametrize("direction", ["above", "below"])
def test_nan_and_infinities_are_yellow_naming_the_series(
    make_query_spec: QuerySpecFactory, value: float, direction: str
) -> None:
    thresholds = {"yellow": 10, "red": 20} if direction == "above" else {"yellow": 20, "red": 10}
    spec = make_query_spec(direction=direction, thresholds=thresholds, line="- {disk}: {value}")
    shown = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[str(value)]

    assert grade_prometheus_query(vector(series(value, disk="sda")), spec) == [
        Line(f"- sda: {shown} ({shown} is not a number to compare)", Grade.YELLOW)
    ]


@pytest.mark.parametrize("grade", ["GREEN", "YELLOW", "RED", "red"])
def test_empty_result_takes_the_on_empty_grade(
    make_query_spec: QuerySpecFactory, grade: str
) -> None:
    spec = make_query_spec(on_empty=grade)

    assert grade_prometheus_query(vector(), spec) == [Line("- no data", Grade(grade.upper()))]


def test_empty_result_is_yellow_by_default(make_query_spec: QuerySpecFactory) -> None:
    assert grade_prometheus_query(vector(), make_query_spec()) == [Line("- no data", Grade.YELLOW)]


def test_many_series_worst_first_capped_with_a_summary(make_query_spec: QuerySpecFactory) -> None:
    spec = make_query_spec(line="- {pod} {value}", max_lines=4)
    obs = vector(
        *(series(v, pod=f"p{v}") for v in (1, 12, 25, 3, 15, 30, 2)), series(math.nan, pod="pn")
    )

    assert grade_prometheus_query(obs, spec) == [
        Line("- p30 30", Grade.RED),
        Line("- p25 25", Grade.RED),
        Line("- p15 15", Grade.YELLOW),
        Line("- p12 12", Grade.YELLOW),
        Line("- …and 4 more series (1 YELLOW, 3 GREEN)", None),
    ]


def test_below_puts_the_smallest_first(make_query_spec: QuerySpecFactory) -> None:
    spec = make_query_spec(
        direction="below", thresholds={"yellow": 20, "red": 10}, line="- {d} {value}"
    )
    obs = vector(series(50, d="a"), series(5, d="b"), series(15, d="c"), series(1, d="e"))

    assert [line.text for line in grade_prometheus_query(obs, spec)] == [
        "- e 1",
        "- b 5",
        "- c 15",
        "- a 50",
    ]


def test_warnings_are_shown_after_the_series_and_not_graded(
    make_query_spec: QuerySpecFactory,
) -> None:
    obs = vector(series(1, job="a"), warnings=("warning: remote read failed",))

    assert grade_prometheus_query(obs, make_query_spec(line="- {job}")) == [
        Line("- a", Grade.GREEN),
        Line("- Prometheus warning: remote read failed", None),
    ]


# Reading replies -----------------------------------------------------------------------------


def reply(status: int, data: Any, reason: str = "") -> HttpReply:
    return HttpReply(status=status, reason=reason, data=data, is_json=True)


def test_vector_reply_is_read_with_its_warnings() -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"job": "b", "__name__": "up"}, "value": [1.5, "1"]},
                {"metric": {}, "value": [1.5, "NaN"]},
            ],
        },
        "warnings": ["partial data"],
        "infos": ["PromQL info: metric might not be a counter"],
    }

    obs = measure_query_reply(reply(200, body))

    assert obs.result_type == "vector"
    assert obs.samples[0] == Sample((("__name__", "up"), ("job", "b")), 1.0)
    assert obs.samples[1].labels == () and math.isnan(obs.samples[1].value)
    assert obs.warnings == (
        "warning: partial data",
        "info: PromQL info: metric might not be a counter",
    )


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            400,
            {"status": "error", "errorType": "bad_data", "error": 'invalid parameter "query": x'},
            'Prometheus rejected the query: invalid parameter "query": x',
        ),
        (
            422,
            {"status": "error", "errorType": "execution", "error": "many-to-many matching"},
            "Prometheus could not execute the query: many-to-many matching (execution)",
        ),
        (
            503,
            {"status": "error", "errorType": "timeout", "error": "query timed out"},
            "Prometheus is unavailable or timed out: query timed out (timeout)",
        ),
        (
            200,
            {"status": "success", "data": {"resultType": "string", "result": [1.5, "hello"]}},
            "the query returned a string ('hello'), not a number: write an expression that "
            "returns an instant vector or a scalar",
        ),
        (
            200,
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            "the query returned a range vector (matrix), which has no single value to grade: "
            "remove the range selector [..] or wrap it in a function such as rate() or "
            "max_over_time()",
        ),
        (
            200,
            {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"value": [1, "2"]}]},
            },
            "unreadable reply from Prometheus: a series without labels",
        ),
        (
            200,
            {"status": "success", "data": {"resultType": "scalar", "result": [1, "many"]}},
            "unreadable reply from Prometheus: 'many' is not a number",
        ),
        (200, ["not", "an", "object"], "unreadable reply from Prometheus: not a JSON object"),
    ],
    ids=["400", "422", "503", "string", "matrix", "no-labels", "bad-number", "not-object"],
)
def test_error_replies_become_plain_lines(status: int, body: Any, message: str) -> None:
    with pytest.raises(ProbeReplyError) as raised:
        measure_query_reply(reply(status, body))
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        (
            401,
            "Unauthorized",
            "Prometheus refused the credentials (HTTP 401 Unauthorized): check the connection",
        ),
        (
            404,
            "Not Found",
            "no Prometheus API at /api/v1/query (HTTP 404 Not Found): "
            "check the connection's base URL",
        ),
        (502, "Bad Gateway", "Prometheus answered HTTP 502 Bad Gateway: <html>bad gateway</html>"),
        (
            302,
            "Found",
            "Prometheus redirected the request (HTTP 302 Found): "
            "set the connection to the final address",
        ),
    ],
)
def test_statuses_without_a_prometheus_error_body(status: int, reason: str, message: str) -> None:
    not_json = HttpReply(status=status, reason=reason, snippet="<html>bad gateway</html>")

    with pytest.raises(ProbeReplyError) as raised:
        measure_query_reply(not_json)
    assert str(raised.value) == message


# The spec ------------------------------------------------------------------------------------


def test_spec_defaults(make_query_spec: QuerySpecFactory) -> None:
    spec = make_query_spec()

    assert spec.direction == "above"
    assert spec.line == "- {labels} {value}"
    assert spec.on_empty is Grade.YELLOW
    assert spec.max_lines == 20
    assert spec.bearer_token_env is None


@pytest.mark.parametrize(
    ("fields", "location", "message"),
    [
        (
            {"thresholds": {"yellow": 20, "red": 20}},
            ("thresholds",),
            "red (20) must be greater than yellow (20)",
        ),
        (
            {"direction": "below", "thresholds": {"yellow": 10, "red": 20}},
            ("thresholds",),
            "red (20) must be less than yellow (10)",
        ),
        ({"line": "- {value:>10}"}, ("line",), "unknown placeholder '{value:>10}'"),
        ({"query": "  "}, ("query",), "must not be empty"),
        (
            {"bearer_token_env": "Bearer abc.def"},
            ("bearer_token_env",),
            "must name an environment variable",
        ),
    ],
    ids=["equal-bands", "below-order", "format-spec", "empty-query", "token-itself"],
)
def test_spec_errors_are_located_on_their_field(
    make_query_spec: QuerySpecFactory,
    fields: dict[str, Any],
    location: tuple[str, ...],
    message: str,
) -> None:
    with pytest.raises(ValidationError) as raised:
        make_query_spec(**fields)
    (error,) = raised.value.errors()
    assert error["loc"] == location
    assert message in error["msg"]
