"""Helpers for kinds that report many lines (series, alert groups): order, cap, one-line text."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.grading import Grade, Line

_BEST_LAST = (Grade.RED, Grade.YELLOW, Grade.GREEN)


def one_line(text: str) -> str:
    """`text` on one line: line breaks from a label or an annotation would split the Markdown."""
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def worst_first(graded: Sequence[tuple[Line, float]], max_lines: int, *, noun: str) -> list[Line]:
    """Lines ordered worst grade first, then by their sort key, then by text; capped.

    Each entry is (line, key): within a grade a smaller key comes first. Beyond `max_lines`
    the rest is summed up in one ungraded line, `- …and 3 more series (1 YELLOW, 2 GREEN)`;
    since the worst come first, the lines shown always carry the overall grade.
    """
    ordered = sorted(
        graded,
        key=lambda entry: (
            -(entry[0].grade.rank if entry[0].grade is not None else -1),
            entry[1],
            entry[0].text,
        ),
    )
    lines = [line for line, _ in ordered]
    if len(lines) <= max_lines:
        return lines
    shown, hidden = lines[:max_lines], lines[max_lines:]
    counts = [
        f"{sum(1 for line in hidden if line.grade is grade)} {grade.value}"
        for grade in _BEST_LAST
        if any(line.grade is grade for line in hidden)
    ]
    summary = f" ({', '.join(counts)})" if counts else ""
    return [*shown, Line(f"- …and {len(hidden)} more {noun}{summary}", None)]
