"""Unit tests of the shared grading functions: half-open bands and the worst line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from schemas.context_spec import LagThresholds
from schemas.grading import Grade, Line, Thresholds, grade_value, worst

# The replication-lag defaults of ARCHITECTURE.md, written out rather than read from the code.
LAG_DEFAULTS = Thresholds(yellow=5000, red=30000)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0, Grade.GREEN, id="0ms-green"),
        pytest.param(4999, Grade.GREEN, id="4999ms-green"),
        pytest.param(4999.999, Grade.GREEN, id="just-below-yellow-green"),
        pytest.param(5000, Grade.YELLOW, id="5000ms-yellow-lower-bound-inclusive"),
        pytest.param(29999, Grade.YELLOW, id="29999ms-yellow"),
        pytest.param(29999.999, Grade.YELLOW, id="just-below-red-yellow"),
        pytest.param(30000, Grade.RED, id="30000ms-red-lower-bound-inclusive"),
        pytest.param(10**9, Grade.RED, id="1e9ms-red"),
    ],
)
def test_grade_value_on_default_lag_bands(value: float, expected: Grade) -> None:
    assert grade_value(value, LAG_DEFAULTS) is expected


def test_default_lag_thresholds_of_the_spec_are_5000_and_30000_ms() -> None:
    assert LagThresholds().bands() == Thresholds(yellow=5000, red=30000)


@pytest.mark.parametrize(
    ("thresholds", "value", "expected"),
    [
        pytest.param(Thresholds(yellow=100, red=200), 99, Grade.GREEN, id="100-200:99-green"),
        pytest.param(Thresholds(yellow=100, red=200), 100, Grade.YELLOW, id="100-200:100-yellow"),
        pytest.param(Thresholds(yellow=100, red=200), 199, Grade.YELLOW, id="100-200:199-yellow"),
        pytest.param(Thresholds(yellow=100, red=200), 200, Grade.RED, id="100-200:200-red"),
        pytest.param(Thresholds(yellow=0.5, red=0.75), 0.25, Grade.GREEN, id="fractional-green"),
        pytest.param(Thresholds(yellow=0.5, red=0.75), 0.5, Grade.YELLOW, id="fractional-yellow"),
        pytest.param(Thresholds(yellow=0.5, red=0.75), 0.75, Grade.RED, id="fractional-red"),
        pytest.param(Thresholds(yellow=0, red=10), 0, Grade.YELLOW, id="yellow-0:0-yellow"),
        pytest.param(Thresholds(yellow=0, red=10), 10, Grade.RED, id="yellow-0:10-red"),
        pytest.param(Thresholds(yellow=10, red=1e12), 1e11, Grade.YELLOW, id="huge-red-yellow"),
    ],
)
def test_grade_value_on_custom_bands(thresholds: Thresholds, value: float, expected: Grade) -> None:
    assert grade_value(value, thresholds) is expected


def test_grade_value_default_bands_differ_from_custom_bands() -> None:
    # The same value grades differently under different bands: the thresholds are honoured.
    assert grade_value(6000, LAG_DEFAULTS) is Grade.YELLOW
    assert grade_value(6000, Thresholds(yellow=10_000, red=20_000)) is Grade.GREEN
    assert grade_value(6000, Thresholds(yellow=1000, red=2000)) is Grade.RED


@pytest.mark.parametrize(
    ("grade", "rank"),
    [
        pytest.param(Grade.GREEN, 0, id="green-0"),
        pytest.param(Grade.YELLOW, 1, id="yellow-1"),
        pytest.param(Grade.RED, 2, id="red-2"),
    ],
)
def test_grade_rank_and_wire_value(grade: Grade, rank: int) -> None:
    assert grade.rank == rank
    assert str(grade) == grade.name
    assert grade == grade.name


def _lines(*grades: Grade | None) -> list[Line]:
    return [Line(f"- line {i}", g) for i, g in enumerate(grades)]


G, Y, R = Grade.GREEN, Grade.YELLOW, Grade.RED


@pytest.mark.parametrize(
    ("grades", "expected"),
    [
        pytest.param((G,), G, id="one-green"),
        pytest.param((G, G, G), G, id="all-green"),
        pytest.param((G, Y, G), Y, id="green-yellow-green"),
        pytest.param((Y, G), Y, id="yellow-first"),
        pytest.param((G, Y, R, G), R, id="red-in-the-middle"),
        pytest.param((R, Y, G), R, id="red-first"),
        pytest.param((G, G, R), R, id="red-last"),
        pytest.param((Y, Y), Y, id="all-yellow"),
        pytest.param((None, G), G, id="ungraded-and-green"),
        pytest.param((G, None, Y), Y, id="ungraded-ignored-yellow"),
        pytest.param((None, R, None), R, id="ungraded-around-red"),
    ],
)
def test_worst_is_the_worst_graded_line(grades: tuple[Grade | None, ...], expected: Grade) -> None:
    assert worst(_lines(*grades)) is expected


@pytest.mark.parametrize(
    "grades",
    [
        pytest.param((), id="no-lines"),
        pytest.param((None,), id="one-ungraded-line"),
        pytest.param((None, None, None), id="only-ungraded-lines"),
    ],
)
def test_worst_without_any_graded_line_is_red(grades: tuple[Grade | None, ...]) -> None:
    # Nothing is GREEN without a measurement.
    assert worst(_lines(*grades)) is Grade.RED


def test_worst_accepts_a_one_shot_iterator() -> None:
    def generate() -> Iterator[Line]:
        yield Line("- Arbiter db3:27017 (not graded: holds no data)", None)
        yield Line("- Secondary db2:27017 replication lag 6120ms", Grade.YELLOW)
        yield Line("- Primary db1:27017 replication lag 0ms", Grade.GREEN)

    assert worst(generate()) is Grade.YELLOW
