"""The shape every probe kind shares: what a probe gets, what it returns, how it is graded.

A plugin author reaches these through `zeroprobe.plugin`; the built-in kinds import them here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from probes.connections import MongoClients
from probes.errors import ProbeError, ProbeReplyError
from probes.http_client import HttpClient
from probes.redact import Redactor
from schemas.context_spec import SpecBase
from schemas.grading import Line


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """What a probe may use: shared clients per connection label and the secret scrubber."""

    mongo: MongoClients
    redact: Redactor
    #: The one HTTP session of the HTTP-backed kinds (Prometheus, Alertmanager).
    http: HttpClient
    #: What a kind keeps between runs, keyed by service id (pipeline_health: the last result
    #: while a provider's rate limit lasts). Only the probe of that service id touches its entry.
    memory: dict[str, Any] = field(default_factory=dict)


#: What reading a reply of an unexpected shape raises (a field of the wrong type, a number out
#: of range, JSON nested beyond the parser's depth).
SHAPE_ERRORS = (
    TypeError,
    ValueError,
    AttributeError,
    KeyError,
    IndexError,
    OverflowError,
    RecursionError,
)


@contextlib.contextmanager
def reading_reply(what: str) -> Iterator[None]:
    """Turn a reply whose shape the measuring code did not expect into a plain RED line.

    A hostile or broken target may answer anything; the measuring functions check the shapes
    they know, and this catches what slips past them, so the line never shows a traceback.
    """
    try:
        yield
    except ProbeError:
        raise
    except SHAPE_ERRORS:
        raise ProbeReplyError(
            f"unreadable reply from {what}: a field has an unexpected type or value"
        ) from None


class Observation:
    """Base of every kind's measurement. A probe returns one; grading turns it into lines.

    A kind may return any value (the echo example returns an int); this base is a convenience.
    """


#: Label names a kind's metric may not use: the engine sets `service_id` itself.
RESERVED_METRIC_LABELS = frozenset({"service_id", "kind"})


@dataclass(frozen=True, slots=True)
class KindMetric:
    """A gauge a kind exports per probe: `name{service_id="...", <label>="..."}`.

    The engine owns the gauge: it creates it when the kind is installed, sets the values that
    `Kind.export` returns after each measured run, and drops a probe's series when a run could
    not measure or the spec goes away. Label values pass through the secret redactor.
    """

    name: str
    documentation: str
    label: str


SpecT = TypeVar("SpecT", bound=SpecBase)
ObservationT = TypeVar("ObservationT")

ProbeFn = Callable[[SpecT, ProbeContext], Awaitable[ObservationT]]
GradeFn = Callable[[ObservationT, SpecT], list[Line]]
#: metric name -> {label value -> value}, for the metrics the kind declares.
ExportFn = Callable[[ObservationT, SpecT], Mapping[str, Mapping[str, float]]]


@dataclass(frozen=True, slots=True)
class Kind(Generic[SpecT, ObservationT]):
    """One probe kind: its spec model, the probe that measures and the pure grading.

    The engine gives every kind the same treatment: the spec's timeout around `probe`, any
    exception turned into a RED line, every line scrubbed of secrets, flap damping, the
    per-probe metrics, the page. Optional fields:

    - `metrics` and `export`: gauges of the kind's own (e.g. the lag of each member).
    - `liveness_needs_target`: a run that could not reach its target fails /liveness (the
      Zero Problem collector contract counts the Mongo-backed probes only).
    - `secret_env_fields`: spec fields that name an environment variable holding a secret;
      the redactor learns those values before any probe runs.
    """

    name: str
    spec: type[SpecT]
    probe: ProbeFn[SpecT, ObservationT]
    grade: GradeFn[ObservationT, SpecT]
    metrics: tuple[KindMetric, ...] = ()
    export: ExportFn[ObservationT, SpecT] | None = None
    liveness_needs_target: bool = False
    secret_env_fields: tuple[str, ...] = ()
