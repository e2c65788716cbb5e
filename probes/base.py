"""The shape every probe kind shares: what a probe gets, what it returns, how it is graded."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zeroprobe.errors import ProbeError, ProbeReplyError
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
