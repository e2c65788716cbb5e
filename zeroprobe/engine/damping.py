"""Flap damping: a colour change is published only once `confirm` consecutive runs agree."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.grading import Grade, Line


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to publish after one run: the colour, and the change still waiting, if any."""

    published: Grade
    pending: Grade | None = None
    agree: int = 0  # consecutive runs that measured `pending`, this one included

    def note(self, confirm: int) -> Line | None:
        """The line saying a change is pending (ungraded, so it does not colour the result)."""
        if self.pending is None:
            return None
        return Line(
            f"- change to {self.pending.value} pending: {self.agree} of {confirm} runs agree "
            f"(confirm: {confirm})",
            None,
        )


def damp(
    published: Grade | None, pending: Grade | None, agree: int, measured: Grade, confirm: int
) -> Verdict:
    """The verdict of a run that measured `measured`, given the colour published so far,
    the change pending so far and how many runs agreed on it.

    The first result ever (`published` None) is published as measured. A run that measures
    the published colour cancels a pending change; one that measures another colour than the
    pending one starts counting afresh.
    """
    if published is None or measured is published:
        return Verdict(measured if published is None else published)
    agreeing = agree + 1 if measured is pending else 1
    if agreeing >= confirm:
        return Verdict(measured)
    return Verdict(published, measured, agreeing)
