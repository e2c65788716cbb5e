"""Transitions (published colour changes) and the messages that carry them to a sink."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemas.grading import Grade

#: Most lines of a probe's actionBody a transition carries (those of its colour first).
MAX_LINES = 10
#: Longest line kept (a target may quote a long reply).
MAX_LINE_CHARS = 500


@dataclass(frozen=True, slots=True)
class Transition:
    """One published colour change of one probe, as recorded in the outbox.

    `old` is the colour last notified (None: never notified, taken as GREEN). `event_id` is
    made once, when the change is recorded, and never changes: receivers dedupe on it.
    """

    event_id: str
    service_id: str
    kind: str
    old: Grade | None
    new: Grade
    at_ms: int
    summary: str
    lines: tuple[str, ...]
    description: str = ""

    def as_json(self) -> dict[str, Any]:
        """The transition as the outbox stores it and the webhook body carries it."""
        return {
            "event_id": self.event_id,
            "service_id": self.service_id,
            "kind": self.kind,
            "from": self.old.value if self.old else None,
            "to": self.new.value,
            "at_ms": self.at_ms,
            "at": rfc3339(self.at_ms),
            "summary": self.summary,
            "lines": list(self.lines),
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transition:
        """The inverse of `as_json`."""
        return cls(
            event_id=str(data["event_id"]),
            service_id=str(data["service_id"]),
            kind=str(data["kind"]),
            old=Grade(data["from"]) if data.get("from") else None,
            new=Grade(data["to"]),
            at_ms=int(data["at_ms"]),
            summary=str(data.get("summary", "")),
            lines=tuple(str(line) for line in data.get("lines", ())),
            description=str(data.get("description", "")),
        )

    def dumps(self) -> str:
        """Compact JSON for the outbox."""
        return json.dumps(self.as_json(), ensure_ascii=False, separators=(",", ":"))

    @property
    def recovered(self) -> bool:
        """A change to GREEN."""
        return self.new is Grade.GREEN

    @property
    def was(self) -> Grade:
        """The colour before, GREEN when never notified."""
        return self.old or Grade.GREEN


@dataclass(frozen=True, slots=True)
class Message:
    """What one delivery to one sink carries: coalesced transitions, oldest first."""

    id: int
    sink: str
    event_id: str
    created_ms: int  # when its oldest transition was recorded: the age of the news
    attempts: int
    next_try_ms: int
    transitions: tuple[Transition, ...]

    def counts(self) -> dict[str, int]:
        """Transitions by new colour, worst first."""
        return {
            grade.value: sum(t.new is grade for t in self.transitions)
            for grade in (Grade.RED, Grade.YELLOW, Grade.GREEN)
        }

    def headline(self) -> str:
        """'zeroprobe: 2 RED, 1 recovered' — what happened, in one line."""
        counts = self.counts()
        parts = [f"{counts[g]} {g}" for g in ("RED", "YELLOW") if counts[g]]
        if counts["GREEN"]:
            parts.append(f"{counts['GREEN']} recovered")
        if len(self.transitions) == 1:
            t = self.transitions[0]
            if t.recovered:
                return f"zeroprobe: {t.service_id} recovered (GREEN, was {t.was})"
            return f"zeroprobe: {t.service_id} is {t.new} (was {t.was})"
        return "zeroprobe: " + ", ".join(parts)


def worst_first(transitions: Sequence[Transition]) -> list[Transition]:
    """RED, then YELLOW, then recoveries; in order of arrival within each."""
    return sorted(transitions, key=lambda t: -t.new.rank)


def page_link(page_url: str, service_id: str) -> str:
    """The probe's page on the status page."""
    return f"{page_url}/ui/{service_id}"


def rfc3339(epoch_ms: float) -> str:
    """A time as Alertmanager and webhook receivers read it: 2026-01-02T03:04:05.678Z."""
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def explaining_lines(lines: Sequence[tuple[str, Grade | None]], grade: Grade) -> tuple[str, ...]:
    """The lines that explain a colour: those of that colour first, then the others, capped."""
    ordered = [text for text, g in lines if g is grade] + [
        text for text, g in lines if g is not grade
    ]
    return tuple(_clip(text, MAX_LINE_CHARS) for text in ordered[:MAX_LINES])


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, an ellipsis marking the cut."""
    return _clip(text, limit)
