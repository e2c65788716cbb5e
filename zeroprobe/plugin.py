"""The public API of zeroprobe for probe-kind plugins: all a plugin author imports.

A plugin is a distribution that registers a `Kind` under the entry-point group
`zeroprobe.kinds` (see docs/writing-a-kind.md):

    from typing import Literal
    from zeroprobe.plugin import Grade, Kind, Line, ProbeContext, SpecBase

    class EchoSpec(SpecBase):
        kind: Literal["echo"]
        value: int

    async def probe(spec: EchoSpec, ctx: ProbeContext) -> int:
        return spec.value

    def grade(value: int, spec: EchoSpec) -> list[Line]:
        return [Line(f"- value {value}", Grade.GREEN if value < 5 else Grade.RED)]

    KIND = Kind(name="echo", spec=EchoSpec, probe=probe, grade=grade)

and in its pyproject.toml:

    [project.entry-points."zeroprobe.kinds"]
    echo = "echo_kind:KIND"

The names below are kept stable within a major version; anything else of zeroprobe, probes
or schemas is internal and may change.
"""

from probes.base import Kind, KindMetric, Observation, ProbeContext, reading_reply
from probes.errors import (
    ProbeConfigError,
    ProbeConnectionError,
    ProbeError,
    ProbeReplyError,
    ProbeTimeoutError,
)
from probes.http_client import (
    HttpClient,
    HttpReply,
    HttpTarget,
    MeasuredReply,
    RawReply,
    request_timeout_s,
)
from probes.lines import one_line, worst_first
from schemas.context_spec import ConnectedSpec, Duration, SpecBase, connection_env_var
from schemas.durations import format_duration, parse_duration_s
from schemas.grading import Grade, Line, Thresholds, grade_value, grade_value_below, worst

__all__ = [
    "ConnectedSpec",
    "Duration",
    "Grade",
    "HttpClient",
    "HttpReply",
    "HttpTarget",
    "Kind",
    "KindMetric",
    "Line",
    "MeasuredReply",
    "Observation",
    "ProbeConfigError",
    "ProbeConnectionError",
    "ProbeContext",
    "ProbeError",
    "ProbeReplyError",
    "ProbeTimeoutError",
    "RawReply",
    "SpecBase",
    "Thresholds",
    "connection_env_var",
    "format_duration",
    "grade_value",
    "grade_value_below",
    "one_line",
    "parse_duration_s",
    "reading_reply",
    "request_timeout_s",
    "worst",
    "worst_first",
]
