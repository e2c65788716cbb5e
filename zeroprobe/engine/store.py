"""The in-memory result store: the newest result and a compact history per service id.

Only the newest result is ever served whole (its document, its graded lines), so it is the
only one kept as a `Result`. Every run, the newest included, is also packed into 14 bytes of
a per-id bytearray (collection time, duration, grade, outcome, body slot); the actionBody
Markdown is kept once per distinct text, so a probe whose lines do not change stores its body
once for all its runs. This is what keeps a probe with 60 runs of history under a few KiB.
"""

from __future__ import annotations

import base64
import re
import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.grading import Grade, Line, worst
from zeroprobe.engine.document import action_body, render_document

HISTORY_SIZE = 60

OUTCOMES = ("success", "error", "timeout")
_GRADES = (Grade.GREEN, Grade.YELLOW, Grade.RED)
_OUTCOME_CODE = {outcome: code for code, outcome in enumerate(OUTCOMES)}
# A run: collected_at_ms as an int32 offset from the track's first run, duration in
# microseconds (uint32), grade rank + 4 * outcome code, body slot: 10 bytes instead of ~770
# as a Result with its document and lines. A track whose runs lie more than ~24 days from
# its first switches to the wide form with the absolute int64 time (14 bytes).
_RUN = struct.Struct("<iIBB")
_WIDE_RUN = struct.Struct("<qIBB")
_OFFSET_MIN_MS, _OFFSET_MAX_MS = -(2**31), 2**31 - 1
# Runs of ASCII digits: the measured values that make one run's text differ from the next.
_NUMBERS = re.compile(r"([0-9]+)")
_MAX_DURATION_US = 2**32 - 1
_LETTER: dict[Grade | None, str] = {Grade.GREEN: "G", Grade.YELLOW: "Y", Grade.RED: "R", None: "-"}
_BY_LETTER = {letter: grade for grade, letter in _LETTER.items()}


@dataclass(frozen=True, slots=True)
class Result:
    """One graded run. `document` holds the response bytes, rendered once.

    The lines are kept as the actionBody text plus one grade letter per line (`Line`
    objects are rebuilt on reading): the body is the same string the history keeps, so
    the newest run's text is stored once. `grade` is the published colour; with flap
    damping (`confirm` > 1) it can differ from the worst line until enough runs agree:
    `pending` is then the measured colour waiting for confirmation and `agree` how many
    consecutive runs measured it.
    """

    service_id: str
    kind: str
    grade: Grade
    action_body: str
    line_grades: str  # one of G, Y, R or - (not graded) per line, interned
    collected_at_ms: int
    duration_s: float
    outcome: str  # success | error | timeout
    reached_target: bool
    document: bytes = field(repr=False)
    pending: Grade | None = None
    agree: int = 0
    # Only when a line's text holds a newline, so the body cannot be split back into lines.
    odd_lines: tuple[Line, ...] | None = field(default=None, repr=False)

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
        grade: Grade | None = None,
        pending: Grade | None = None,
        agree: int = 0,
    ) -> Result:
        """A result with its overall grade (the worst line unless given) and its document."""
        line_tuple = tuple(lines)
        published = worst(line_tuple) if grade is None else grade
        body = action_body(line_tuple)
        return cls(
            service_id=service_id,
            kind=kind,
            grade=published,
            action_body=body,
            line_grades=sys.intern("".join(_LETTER[line.grade] for line in line_tuple)),
            collected_at_ms=collected_at_ms,
            duration_s=duration_s,
            outcome=outcome,
            reached_target=reached_target,
            document=render_document(service_id, published, collected_at_ms, body),
            pending=pending,
            agree=agree,
            odd_lines=line_tuple if any("\n" in line.text for line in line_tuple) else None,
        )

    @property
    def lines(self) -> tuple[Line, ...]:
        """The graded lines of the actionBody."""
        if self.odd_lines is not None:
            return self.odd_lines
        if not self.line_grades:
            return ()
        texts = self.action_body.split("\n")
        return tuple(
            Line(text, _BY_LETTER[letter])
            for text, letter in zip(texts, self.line_grades, strict=True)
        )


@dataclass(frozen=True, slots=True)
class HistoryRun:
    """One past run as the history keeps it (unpacked on reading)."""

    collected_at_ms: int
    grade: Grade
    outcome: str
    duration_s: float
    action_body: str


class _Track:
    """Everything the store keeps about one service id."""

    __slots__ = (
        "base_ms",
        "bodies",
        "errors",
        "last_success_ms",
        "newest",
        "record",
        "reference",
        "runs",
        "successes",
        "timeouts",
    )

    def __init__(self) -> None:
        self.newest: Result | None = None
        self.runs = bytearray()  # packed records, oldest first
        self.record = _RUN
        self.base_ms = 0  # what narrow records' times are offsets from
        # Distinct actionBody texts the runs point at by index, each kept whole (str) or as
        # the numbers that differ from `reference` (bytes); None marks a free slot.
        self.bodies: list[str | bytes | None] = []
        self.reference: str | None = None
        # Runs by outcome (a Prometheus counter), as plain slots: a list would cost 80 bytes.
        self.successes = self.errors = self.timeouts = 0
        self.last_success_ms: int | None = None

    def add(self, result: Result, history_size: int) -> None:
        slot = self._slot_of(result.action_body)
        if self.newest is not None and self.runs and slot == self.runs[-1]:
            # The same text as the newest run: share one string (same value, so the frozen
            # result does not change for any reader).
            object.__setattr__(result, "action_body", self.newest.action_body)
        outcome = _OUTCOME_CODE[result.outcome]
        code = result.grade.rank | outcome << 2
        duration_us = min(_MAX_DURATION_US, max(0, round(result.duration_s * 1_000_000)))
        at_ms = result.collected_at_ms
        if not self.runs:
            self.base_ms = at_ms
        if self.record is _RUN and not _OFFSET_MIN_MS <= at_ms - self.base_ms <= _OFFSET_MAX_MS:
            self._widen()
        size = self.record.size
        offset = self.base_ms if self.record is _RUN else 0
        self.runs += self.record.pack(at_ms - offset, duration_us, code, slot)
        if len(self.runs) > history_size * size:
            evicted = self.runs[size - 1]
            del self.runs[:size]
            if evicted not in self.runs[size - 1 :: size]:
                self.bodies[evicted] = None
                while self.bodies and self.bodies[-1] is None:
                    self.bodies.pop()
        self.newest = result
        if outcome == 0:
            self.successes += 1
            self.last_success_ms = at_ms
        elif outcome == 1:
            self.errors += 1
        else:
            self.timeouts += 1

    def _widen(self) -> None:
        runs = bytearray()
        for at_ms, duration_us, code, slot in _RUN.iter_unpack(self.runs):
            runs += _WIDE_RUN.pack(at_ms + self.base_ms, duration_us, code, slot)
        self.runs, self.record, self.base_ms = runs, _WIDE_RUN, 0

    def _slot_of(self, body: str) -> int:
        bodies = self.bodies
        if self.runs and self.newest is not None and self.newest.action_body == body:
            return self.runs[-1]  # the common case: nothing changed
        entry = self._encode(body)
        try:
            return bodies.index(entry)
        except ValueError:
            pass
        try:
            slot = bodies.index(None)
        except ValueError:
            bodies.append(entry)
            return len(bodies) - 1
        bodies[slot] = entry
        return slot

    def _encode(self, body: str) -> str | bytes:
        """`body` as the numbers that differ from the reference text (most runs of a probe
        differ from each other in a measured value only), or whole when that is not shorter
        or the text around the numbers differs. A whole text becomes the reference when no
        kept entry depends on the old one."""
        if self.reference is not None:
            parts = _NUMBERS.split(body)
            reference = _NUMBERS.split(self.reference)
            if parts[0::2] == reference[0::2]:
                delta = ";".join(
                    f"{index}:{number}"
                    for index, (number, was) in enumerate(
                        zip(parts[1::2], reference[1::2], strict=True)
                    )
                    if number != was
                ).encode("ascii")
                if len(delta) < len(body):
                    return delta
        if self.reference is None or not any(isinstance(e, bytes) for e in self.bodies):
            self.reference = body
        return body

    def _decode(self, entry: str | bytes | None) -> str:
        if entry is None:
            return ""
        if isinstance(entry, str):
            return entry
        parts = _NUMBERS.split(self.reference or "")
        if entry:
            for change in entry.decode("ascii").split(";"):
                index, number = change.split(":")
                parts[2 * int(index) + 1] = number
        return "".join(parts)

    def snapshot(self) -> dict[str, Any]:
        """The track as JSON-ready data, packed as it is kept (warm start, web/cluster.py):
        the runs' bytes in base64, the body texts (deltas as ASCII), the newest result."""
        assert self.newest is not None
        return {
            "newest": _result_json(self.newest),
            "runs": base64.b64encode(self.runs).decode("ascii"),
            "wide": self.record is _WIDE_RUN,
            "base_ms": self.base_ms,
            "bodies": [
                {"delta": entry.decode("ascii")} if isinstance(entry, bytes) else entry
                for entry in self.bodies
            ],
            "reference": self.reference,
            "last_success_ms": self.last_success_ms,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any], history_size: int) -> _Track:
        """The track of `snapshot()`; ValueError (KeyError, TypeError) when `data` is not one.
        Its runs are not counted as this pod's runs (the outcome counters start at zero)."""
        track = cls()
        track.newest = _result_from_json(data["newest"])
        track.record = _WIDE_RUN if data["wide"] else _RUN
        track.base_ms = int(data["base_ms"])
        track.runs = bytearray(base64.b64decode(str(data["runs"]), validate=True))
        reference = data["reference"]
        track.reference = str(reference) if reference is not None else None
        track.bodies = [
            entry["delta"].encode("ascii") if isinstance(entry, dict) else entry
            for entry in data["bodies"]
        ]
        size = track.record.size
        if len(track.runs) % size or len(track.runs) > history_size * size or not track.runs:
            raise ValueError("runs: not a whole number of records within the history size")
        if not all(entry is None or isinstance(entry, str | bytes) for entry in track.bodies):
            raise ValueError("bodies: not texts")
        for code in track.runs[size - 2 :: size]:
            if code & 3 > 2 or code >> 2 >= len(OUTCOMES):
                raise ValueError("runs: not a grade and outcome")
        for slot in track.runs[size - 1 :: size]:
            if slot >= len(track.bodies) or track.bodies[slot] is None:
                raise ValueError("runs: a body that is not there")
        for entry in track.bodies:
            track._decode(entry)  # a delta without its reference fails here
        last = data["last_success_ms"]
        track.last_success_ms = int(last) if last is not None else None
        return track

    def history(self) -> list[HistoryRun]:
        offset = self.base_ms if self.record is _RUN else 0
        texts = [self._decode(entry) for entry in self.bodies]
        return [
            HistoryRun(
                collected_at_ms=at_ms + offset,
                grade=_GRADES[code & 3],
                outcome=OUTCOMES[code >> 2],
                duration_s=duration_us / 1_000_000,
                action_body=texts[slot],
            )
            for at_ms, duration_us, code, slot in self.record.iter_unpack(self.runs)
        ]


class ResultStore:
    """The only shared state: written by the runner, read by the HTTP layer and /metrics."""

    def __init__(self, history_size: int = HISTORY_SIZE) -> None:
        if not 1 <= history_size <= 255:
            raise ValueError("history_size must be within 1..255 (a body slot is one byte)")
        self._history_size = history_size
        self._tracks: dict[str, _Track] = {}
        # Ids whose newest result or counters changed since /metrics last looked (metrics.py
        # renders their series again, once per change); a set add is all a `put` pays.
        self._changed: set[str] = set()
        # Results of ids another shard owns, kept until a time (epoch ms): what a pod received
        # by warm start during a reshard (zeroprobe/web/cluster.py). Never served by the fast
        # path (`newest`), only when the owners do not answer.
        self._grace: dict[str, tuple[_Track, int]] = {}

    def track(self, service_ids: Iterable[str]) -> None:
        """Make the store know exactly these ids (results of others are dropped)."""
        wanted = set(service_ids)
        for service_id in list(self._tracks):
            if service_id not in wanted:
                del self._tracks[service_id]
                self._changed.add(service_id)
        for service_id in list(self._grace):
            if service_id not in wanted:
                del self._grace[service_id]
        for service_id in wanted:
            if service_id not in self._tracks:
                self._tracks[service_id] = _Track()

    def reset(self, service_ids: Iterable[str]) -> None:
        """Drop the results of these tracked ids and keep tracking them (a changed spec)."""
        for service_id in service_ids:
            if service_id in self._tracks:
                self._tracks[service_id] = _Track()
                self._changed.add(service_id)
            self._grace.pop(service_id, None)

    def knows(self, service_id: str) -> bool:
        """True for a tracked id, with or without a result yet."""
        return service_id in self._tracks

    def put(self, result: Result) -> None:
        """Record the newest result of a tracked id (an untracked id is ignored)."""
        track = self._tracks.get(result.service_id)
        if track is not None:
            track.add(result, self._history_size)
            self._changed.add(result.service_id)

    def newest(self, service_id: str) -> Result | None:
        """The newest result, or None before the first run finished."""
        track = self._tracks.get(service_id)
        return track.newest if track is not None else None

    def history(self, service_id: str) -> list[HistoryRun]:
        """Runs oldest first, the newest included, at most `history_size` of them."""
        track = self._tracks.get(service_id)
        return track.history() if track is not None else []

    def service_ids(self) -> list[str]:
        """Every tracked id, sorted."""
        return sorted(self._tracks)

    # Warm start and reshard grace (zeroprobe/web/cluster.py) ---------------------------------

    def snapshots(self, now_ms: int, wanted: Callable[[str], bool]) -> list[dict[str, Any]]:
        """Every result this pod holds of the ids `wanted` selects, its own and those kept for
        other shards' ids (expired ones are forgotten), as `_Track.snapshot` data."""
        self.forget_expired(now_ms)
        own = {sid: t for sid, t in self._tracks.items() if t.newest is not None and wanted(sid)}
        kept = [
            track
            for sid, (track, _) in self._grace.items()
            if sid not in own and track.newest is not None and wanted(sid)
        ]
        return [track.snapshot() for track in [*own.values(), *kept]]

    def restore(self, snapshot: Mapping[str, Any], *, grace_until_ms: int | None = None) -> bool:
        """Take another pod's result and history of a tracked id (a `snapshots` item): as this
        pod's own (its first round is then done for the id), or, with `grace_until_ms`, as a
        result kept for an id another shard owns until then. An id with a result of its own
        keeps it. True when taken; ValueError (KeyError, TypeError) for data that is not a
        snapshot."""
        track = _Track.from_snapshot(snapshot, self._history_size)
        assert track.newest is not None
        service_id = track.newest.service_id
        if service_id not in self._tracks:
            return False
        if grace_until_ms is None:
            if self._tracks[service_id].newest is not None:
                return False
            self._tracks[service_id] = track
            self._changed.add(service_id)
            return True
        held = self._grace.get(service_id)
        before = held[0].newest if held is not None else None
        if before is not None and before.collected_at_ms >= track.newest.collected_at_ms:
            return False
        self._grace[service_id] = (track, grace_until_ms)
        return True

    def unpack(self, snapshot: Mapping[str, Any]) -> tuple[Result, list[HistoryRun]]:
        """The newest result and the history of a snapshot (ValueError when it is not one)."""
        track = _Track.from_snapshot(snapshot, self._history_size)
        assert track.newest is not None
        return track.newest, track.history()

    def grace_newest(self, service_id: str, now_ms: int) -> Result | None:
        """The result kept for an id another shard owns, None when none or expired."""
        held = self._grace.get(service_id)
        if held is None:
            return None
        if held[1] < now_ms:
            del self._grace[service_id]
            return None
        return held[0].newest

    def forget_expired(self, now_ms: int) -> None:
        """Drop the kept results whose grace window has ended."""
        for service_id, (_, until_ms) in list(self._grace.items()):
            if until_ms < now_ms:
                del self._grace[service_id]

    def series(self) -> Iterator[tuple[Result, tuple[int, int, int], int | None]]:
        """Per id with a result: the newest result, runs by outcome (OUTCOMES order) and the
        time of the newest run that measured its target (ms), for the metrics collector."""
        # A snapshot: a scrape rendered off the event loop must not see the dict change size.
        for track in list(self._tracks.values()):
            if track.newest is not None:
                counts = (track.successes, track.errors, track.timeouts)
                yield track.newest, counts, track.last_success_ms

    def take_changed(self) -> set[str]:
        """The ids put, reset, restored or dropped since the previous call (on the event loop)."""
        changed, self._changed = self._changed, set()
        return changed

    def series_of(self, service_id: str) -> tuple[Result, tuple[int, int, int], int | None] | None:
        """What `series` yields for one id, or None (untracked, or no result yet)."""
        track = self._tracks.get(service_id)
        if track is None or track.newest is None:
            return None
        return track.newest, (track.successes, track.errors, track.timeouts), track.last_success_ms


def _result_json(result: Result) -> dict[str, Any]:
    odd = result.odd_lines
    return {
        "service_id": result.service_id,
        "kind": result.kind,
        "grade": result.grade.value,
        "action_body": result.action_body,
        "line_grades": result.line_grades,
        "collected_at_ms": result.collected_at_ms,
        "duration_s": result.duration_s,
        "outcome": result.outcome,
        "reached_target": result.reached_target,
        "document": result.document.decode("utf-8"),
        "pending": result.pending.value if result.pending is not None else None,
        "agree": result.agree,
        "odd_lines": (
            [[line.text, line.grade.value if line.grade else None] for line in odd]
            if odd is not None
            else None
        ),
    }


def _result_from_json(data: Mapping[str, Any]) -> Result:
    odd = data["odd_lines"]
    outcome = str(data["outcome"])
    if outcome not in _OUTCOME_CODE:
        raise ValueError(f"outcome: {outcome!r}")
    line_grades = str(data["line_grades"])
    if any(letter not in _BY_LETTER for letter in line_grades):
        raise ValueError("line_grades: not grade letters")
    body = str(data["action_body"])
    if odd is None and line_grades and len(body.split("\n")) != len(line_grades):
        raise ValueError("line_grades: not one per line")
    return Result(
        service_id=str(data["service_id"]),
        kind=str(data["kind"]),
        grade=Grade(data["grade"]),
        action_body=body,
        line_grades=sys.intern(line_grades),
        collected_at_ms=int(data["collected_at_ms"]),
        duration_s=float(data["duration_s"]),
        outcome=outcome,
        reached_target=bool(data["reached_target"]),
        document=str(data["document"]).encode("utf-8"),
        pending=Grade(data["pending"]) if data["pending"] is not None else None,
        agree=int(data["agree"]),
        odd_lines=(
            tuple(Line(str(text), Grade(grade) if grade else None) for text, grade in odd)
            if odd is not None
            else None
        ),
    )
