"""Elections seen between runs: a change of primary or of term stays a YELLOW line a while.

A probe sees a replica set once a run, so an election is what differs between two runs: the
primary's name or the replica set's `term`. What was seen last is kept in the kind's memory
(`ProbeContext.memory`, one entry per service id, one sub-entry per replica set).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from probes.mongo_replication_lag.words import format_span
from schemas.grading import Grade, Line


@dataclass(frozen=True, slots=True)
class Election:
    """One change seen between two runs, `ago_s` before the run that reports it."""

    ago_s: float
    before: str
    after: str
    term_before: int | None
    term_after: int | None


def clock() -> float:
    """Seconds on a clock that does not jump (the tests replace it to let time pass)."""
    return time.monotonic()


def track_elections(
    memory: dict[str, Any], primary: str | None, term: int | None, now_s: float, window_s: float
) -> tuple[Election, ...]:
    """Record this run's primary and term in `memory`; the changes of the last `window_s`,
    newest first. A run without a primary records nothing: the next primary is compared with
    the last one seen."""
    changes: list[tuple[float, str, str, int | None, int | None]] = [
        change for change in memory.get("changes", []) if now_s - change[0] < window_s
    ]
    if primary is not None:
        before, term_before = memory.get("primary"), memory.get("term")
        term_changed = term is not None and term_before is not None and term != term_before
        if isinstance(before, str) and (primary != before or term_changed):
            changes.append((now_s, before, primary, term_before, term))
        memory["primary"], memory["term"] = primary, term
    memory["changes"] = changes
    return tuple(
        Election(now_s - at_s, before, after, term_before, term_after)
        for at_s, before, after, term_before, term_after in reversed(changes)
    )


def grade_elections(elections: tuple[Election, ...], window_s: float) -> Line | None:
    """A YELLOW line for the newest election of the window (and how many there were)."""
    if not elections:
        return None
    newest = elections[0]
    terms = (
        f" (term {newest.term_before} → {newest.term_after})"
        if newest.term_before is not None and newest.term_after is not None
        else ""
    )
    ago = format_span(newest.ago_s)
    if newest.before != newest.after:
        text = f"- primary changed {ago} ago: {newest.before} → {newest.after}{terms}"
    else:
        text = f"- new term {ago} ago: {newest.after} elected primary again{terms}"
    if len(elections) > 1:
        text += f"; {len(elections)} elections in the last {format_span(window_s)}"
    return Line(text, Grade.YELLOW)
