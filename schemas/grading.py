"""Grades and the pure grading functions shared by every probe kind."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Grade(StrEnum):
    """The Zero Problem colour vocabulary, best to worst."""

    GREEN = "GREEN"
    YELLOW = "YELLOW"
    RED = "RED"

    @property
    def rank(self) -> int:
        """0 for GREEN, 1 for YELLOW, 2 for RED: the value exported as a metric."""
        return _RANK[self]


_RANK = {Grade.GREEN: 0, Grade.YELLOW: 1, Grade.RED: 2}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Half-open bands, lower bound inclusive: GREEN [0, yellow), YELLOW [yellow, red), RED."""

    yellow: float
    red: float


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the actionBody. `grade` None means listed but not graded (an arbiter)."""

    text: str
    grade: Grade | None


def grade_value(value: float, thresholds: Thresholds) -> Grade:
    """Grade a measured value on the half-open bands of `thresholds`."""
    if value >= thresholds.red:
        return Grade.RED
    if value >= thresholds.yellow:
        return Grade.YELLOW
    return Grade.GREEN


def grade_value_below(value: float, thresholds: Thresholds) -> Grade:
    """Grade a value where smaller is worse (free disk, healthy replicas): the mirror bands.

    Here yellow > red, and the bound is inclusive on the worse side: RED (-inf, red],
    YELLOW (red, yellow], GREEN (yellow, inf).
    """
    if value <= thresholds.red:
        return Grade.RED
    if value <= thresholds.yellow:
        return Grade.YELLOW
    return Grade.GREEN


def worst(lines: Iterable[Line]) -> Grade:
    """The overall grade: the worst graded line.

    Nothing is GREEN without a measurement, so a result with no graded line is RED.
    """
    grades = [line.grade for line in lines if line.grade is not None]
    if not grades:
        return Grade.RED
    return max(grades, key=lambda g: g.rank)
