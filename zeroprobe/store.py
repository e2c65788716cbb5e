"""The in-memory result store: the newest result and a bounded history per service id."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from zeroprobe.document import action_body, render_document
from zeroprobe.grading import Grade, Line, worst

HISTORY_SIZE = 60


@dataclass(frozen=True, slots=True)
class Result:
    """One graded run. `document` holds the response bytes, rendered once."""

    service_id: str
    kind: str
    grade: Grade
    lines: tuple[Line, ...]
    collected_at_ms: int
    duration_s: float
    outcome: str  # success | error | timeout
    reached_target: bool
    document: bytes = field(repr=False)

    @classmethod
    def build(
        cls,
        *,
        service_id: str,
        kind: str,
        lines: Iterable[Line],
        collected_at_ms: int,
        duration_s: float,
        outcome: str,
        reached_target: bool,
    ) -> Result:
        """A result with its overall grade and its document computed once."""
        line_tuple = tuple(lines)
        grade = worst(line_tuple)
        body = action_body(line_tuple)
        return cls(
            service_id=service_id,
            kind=kind,
            grade=grade,
            lines=line_tuple,
            collected_at_ms=collected_at_ms,
            duration_s=duration_s,
            outcome=outcome,
            reached_target=reached_target,
            document=render_document(service_id, grade, collected_at_ms, body),
        )

    @property
    def action_body(self) -> str:
        """The Markdown body of the result."""
        return action_body(self.lines)


class ResultStore:
    """The only shared state: written by the runner, read by the HTTP layer."""

    def __init__(self, history_size: int = HISTORY_SIZE) -> None:
        self._history_size = history_size
        self._history: dict[str, deque[Result]] = {}

    def track(self, service_ids: Iterable[str]) -> None:
        """Make the store know exactly these ids (results of others are dropped)."""
        wanted = set(service_ids)
        for service_id in list(self._history):
            if service_id not in wanted:
                del self._history[service_id]
        for service_id in wanted:
            self._history.setdefault(service_id, deque(maxlen=self._history_size))

    def reset(self, service_ids: Iterable[str]) -> None:
        """Drop the results of these tracked ids and keep tracking them (a changed spec)."""
        for service_id in service_ids:
            if service_id in self._history:
                self._history[service_id] = deque(maxlen=self._history_size)

    def knows(self, service_id: str) -> bool:
        """True for a tracked id, with or without a result yet."""
        return service_id in self._history

    def put(self, result: Result) -> None:
        """Record the newest result of a tracked id (an untracked id is ignored)."""
        history = self._history.get(result.service_id)
        if history is not None:
            history.append(result)

    def newest(self, service_id: str) -> Result | None:
        """The newest result, or None before the first run finished."""
        history = self._history.get(service_id)
        return history[-1] if history else None

    def history(self, service_id: str) -> list[Result]:
        """Results oldest first, at most `history_size` of them."""
        return list(self._history.get(service_id, ()))

    def service_ids(self) -> list[str]:
        """Every tracked id, sorted."""
        return sorted(self._history)
