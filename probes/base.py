"""The shape every probe kind shares: what a probe gets, what it returns, how it is graded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zeroprobe.grading import Line
from zeroprobe.redact import Redactor

if TYPE_CHECKING:
    from zeroprobe.connections import MongoClients
    from zeroprobe.http_client import HttpClient
    from zeroprobe.metrics import Metrics


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


class Observation:
    """Base of every kind's measurement. A probe returns one; grading turns it into lines."""


ProbeFn = Callable[[Any, ProbeContext], Awaitable[Any]]
GradeFn = Callable[[Any, Any], list[Line]]
ExportFn = Callable[[Any, Any, "Metrics"], None]


@dataclass(frozen=True, slots=True)
class ProbeKind:
    """A registry entry: the functions of one probe kind.

    `probe` measures (and only measures), `grade` is pure, `export` writes kind-specific
    metrics. `liveness_needs_target` puts the kind's reachability into the /liveness contract.
    """

    name: str
    probe: ProbeFn
    grade: GradeFn
    export: ExportFn | None = None
    forget: Callable[[str, Metrics], None] | None = None
    liveness_needs_target: bool = False
