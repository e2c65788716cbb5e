"""A PromQL instant query, graded per series against thresholds in the query's own unit.

`probe_prometheus_query` sends the query to `/api/v1/query` and reads the reply into a
`QueryObservation` (`measure_query_reply`, pure); `grade_prometheus_query` (pure) turns it
into one line per series, worst first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probes.base import Kind, Observation, ProbeContext, reading_reply
from probes.errors import ProbeReplyError
from probes.http_client import HttpReply, request_timeout_s, status_line
from probes.lines import one_line, worst_first
from schemas.context_spec import PrometheusQuerySpec
from schemas.grading import Grade, Line, grade_value, grade_value_below
from schemas.line_template import parse_template, render_template

QUERY_PATH = "/api/v1/query"
SERVICE = "Prometheus"


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of the result: its labels (sorted by name) and its value."""

    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True, slots=True)
class QueryObservation(Observation):
    """The query's result: a vector (any number of series) or a scalar (one sample)."""

    result_type: str  # vector | scalar
    samples: tuple[Sample, ...]
    warnings: tuple[str, ...] = ()


async def probe_prometheus_query(spec: PrometheusQuerySpec, ctx: ProbeContext) -> QueryObservation:
    """Run `spec.query` as an instant query against the Prometheus of `spec.connection`."""
    target = ctx.http.target(spec.connection, spec.bearer_token_env)
    timeout_s = request_timeout_s(spec.timeout_s)
    reply = await ctx.http.request_json(
        target,
        "POST",
        QUERY_PATH,
        service=SERVICE,
        timeout_s=timeout_s,
        # Prometheus's own evaluation timeout, so that it gives up when we do.
        form={"query": spec.query, "timeout": f"{timeout_s:.3f}"},
    )
    with reading_reply(SERVICE):
        return measure_query_reply(reply)


def measure_query_reply(reply: HttpReply) -> QueryObservation:
    """Read a reply of /api/v1/query; ProbeReplyError for an error or an unusable result."""
    data = reply.data if reply.is_json else None
    if isinstance(data, Mapping) and data.get("status") == "error":
        raise ProbeReplyError(_error_line(reply.status, data))
    if reply.status != 200:
        raise ProbeReplyError(status_line(reply, SERVICE, QUERY_PATH))
    if not isinstance(data, Mapping):
        raise ProbeReplyError(
            f"unreadable reply from {SERVICE}: not a JSON object"
            + (f": {reply.snippet[:80]}" if reply.snippet else "")
        )
    if data.get("status") != "success":
        raise ProbeReplyError(f"unreadable reply from {SERVICE}: no status 'success'")
    notes = tuple(
        f"{what}: {one_line(str(text))}"
        for what, key in (("warning", "warnings"), ("info", "infos"))
        for text in _list(data.get(key))
    )
    body = data.get("data")
    if not isinstance(body, Mapping):
        raise ProbeReplyError(f"unreadable reply from {SERVICE}: no data")
    result_type, result = body.get("resultType"), body.get("result")
    if result_type == "vector":
        if not isinstance(result, list):
            raise ProbeReplyError(f"unreadable reply from {SERVICE}: vector result not a list")
        samples = tuple(_vector_sample(item) for item in result)
        return QueryObservation("vector", samples, notes)
    if result_type == "scalar":
        return QueryObservation("scalar", (Sample((), _value(result)),), notes)
    if result_type == "string":
        shown = result[1] if isinstance(result, list) and len(result) == 2 else result
        raise ProbeReplyError(
            f"the query returned a string ({shown!r}), not a number: write an expression "
            "that returns an instant vector or a scalar"
        )
    if result_type == "matrix":
        raise ProbeReplyError(
            "the query returned a range vector (matrix), which has no single value to grade: "
            "remove the range selector [..] or wrap it in a function such as rate() or "
            "max_over_time()"
        )
    raise ProbeReplyError(f"unreadable reply from {SERVICE}: result type {result_type!r}")


_ERROR_PREFIX = {
    400: f"{SERVICE} rejected the query",
    422: f"{SERVICE} could not execute the query",
    503: f"{SERVICE} is unavailable or timed out",
}


def _error_line(status: int, data: Mapping[str, Any]) -> str:
    """`status: error` replies carry Prometheus's own words: show them."""
    error = one_line(str(data.get("error") or "no error text"))
    error_type = data.get("errorType")
    prefix = _ERROR_PREFIX.get(status, f"{SERVICE} answered HTTP {status}")
    kind = f" ({error_type})" if error_type and status not in (400,) else ""
    return f"{prefix}: {error}{kind}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _vector_sample(item: Any) -> Sample:
    if not isinstance(item, Mapping) or not isinstance(item.get("metric"), Mapping):
        raise ProbeReplyError(f"unreadable reply from {SERVICE}: a series without labels")
    labels = tuple(sorted((str(k), str(v)) for k, v in item["metric"].items()))
    return Sample(labels, _value(item.get("value")))


def _value(pair: Any) -> float:
    """[timestamp, "1.5"] -> 1.5; "NaN", "+Inf" and "-Inf" as floats."""
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[1], str):
        raise ProbeReplyError(f"unreadable reply from {SERVICE}: a sample is not [time, value]")
    try:
        return float(pair[1])
    except ValueError:
        raise ProbeReplyError(
            f"unreadable reply from {SERVICE}: {pair[1]!r} is not a number"
        ) from None


def format_number(value: float) -> str:
    """A value the way a person reads it: 0.0523, 1234.57, 1234567, 1.2e-07, NaN, +Inf."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    magnitude = abs(value)
    if value.is_integer() and magnitude < 1e15:
        return str(int(value))
    if 1e6 <= magnitude < 1e15:
        return f"{value:.0f}"
    if magnitude >= 1e-4:
        return f"{value:.6g}"
    return f"{value:.4g}"


def format_labels(sample: Sample, result_type: str) -> str:
    """`name{a="x", b="y"}` as PromQL writes a series; `{}` without labels; `scalar`."""
    if result_type == "scalar":
        return "scalar"
    labels = dict(sample.labels)
    name = labels.pop("__name__", "")
    inner = ", ".join(f"{k}={_quote(v)}" for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}" if inner or not name else name


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def grade_prometheus_query(observation: QueryObservation, spec: PrometheusQuerySpec) -> list[Line]:
    """One line per series, worst first, at most `max_lines`; then Prometheus's warnings."""
    notes = [Line(f"- {SERVICE} {note}", None) for note in observation.warnings]
    if not observation.samples:
        return [Line("- no data", spec.on_empty), *notes]
    template = parse_template(spec.line)
    bands = spec.thresholds.bands()
    graded: list[tuple[Line, float]] = []
    for sample in observation.samples:
        value_text = format_number(sample.value)
        values = dict(sample.labels)
        values.update(labels=format_labels(sample, observation.result_type), value=value_text)
        text = one_line(render_template(template, values))
        if not text.startswith("- "):
            text = f"- {text}"
        if not math.isfinite(sample.value):
            # NaN and ±Inf are not numbers to compare: YELLOW, naming the series.
            line = Line(f"{text} ({value_text} is not a number to compare)", Grade.YELLOW)
            graded.append((line, math.inf))
            continue
        if spec.direction == "below":
            graded.append((Line(text, grade_value_below(sample.value, bands)), sample.value))
        else:
            graded.append((Line(text, grade_value(sample.value, bands)), -sample.value))
    return [*worst_first(graded, spec.max_lines, noun="series"), *notes]


# /liveness is about the Mongo-backed probes: an outage of this kind's target shows as a RED
# line of its own probe, not as a failing collector.
KIND = Kind(
    name="prometheus_query",
    spec=PrometheusQuerySpec,
    probe=probe_prometheus_query,
    grade=grade_prometheus_query,
    secret_env_fields=("bearer_token_env",),
)
