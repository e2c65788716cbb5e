"""The primary's oplog window, and how much of it each secondary's lag uses.

A secondary whose lag outgrows the window has lost the entries it needs and must be resynced,
so lag is graded against the window too (check_mongodb's way: a share of the window), and
the headroom (window - lag, Metricbeat's way) is exported. The window is read as mongosh's
`rs.printReplicationInfo()` reads it: the first and the last entry of `local.oplog.rs` in
`$natural` order, one `find` each with limit 1, on the primary only.

A reading is used again for a while rather than read every run (`reusable`): the window is
hours to days long and moves slowly, while what is graded against it, how far each secondary
is behind, is measured afresh every run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bson import Timestamp
from bson.datetime_ms import DatetimeMS
from pymongo import AsyncMongoClient
from pymongo import errors as mongo_errors

from probes.base import ProbeContext
from probes.mongo_replication_lag.driver import map_mongo_error
from probes.mongo_replication_lag.words import format_span
from schemas.context_spec import MongoReplicationLagSpec
from schemas.grading import Grade, Line, Thresholds, grade_value

OPLOG_NAMESPACE = "local.oplog.rs"
#: Only the times of an entry are read, never its operation.
_ENDS = {"ts": 1, "wall": 1, "_id": 0}
PRIVILEGE_MISSING = (
    "not authorized to read local.oplog.rs: the user needs clusterMonitor and read on the "
    "local database (Unauthorized, code 13)"
)


#: A reading is used again until it is this share of its window old, and at most
#: `REUSE_MAX_S`: a window of 26h is read every 10 minutes, one of 2h every 72 s.
REUSE_SHARE = 0.01
REUSE_MAX_S = 600.0


@dataclass(frozen=True, slots=True)
class OplogReading:
    """The window read on `primary`, or why it is unknown (`problem`, graded `problem_grade`)."""

    primary: str
    window_s: float | None = None
    problem: str | None = None
    problem_grade: Grade | None = Grade.YELLOW


async def read_oplog_window(
    client: AsyncMongoClient[dict[str, Any]],
    primary: str,
    spec: MongoReplicationLagSpec,
    ctx: ProbeContext,
) -> OplogReading:
    """Read the window through `client`, whose reads go to the primary `primary`.

    Runs inside the probe's `pymongo.timeout`, so the driver sends each `find` with a
    `maxTimeMS` of what is left. A refusal or an error is a YELLOW reading, never an
    exception: the lag lines measured already stand.
    """
    oplog = client.local["oplog.rs"]
    try:
        first = await oplog.find_one({}, _ENDS, sort=[("$natural", 1)])
        last = await oplog.find_one({}, _ENDS, sort=[("$natural", -1)])
    except mongo_errors.OperationFailure as exc:
        if exc.code == 13:
            return OplogReading(primary, problem=PRIVILEGE_MISSING)
        return OplogReading(
            primary, problem=f"reading {OPLOG_NAMESPACE}: {map_error(exc, spec, ctx)}"
        )
    except mongo_errors.PyMongoError as exc:
        return OplogReading(
            primary, problem=f"reading {OPLOG_NAMESPACE}: {map_error(exc, spec, ctx)}"
        )
    if first is None or last is None:
        return OplogReading(primary, problem=f"{OPLOG_NAMESPACE} on {primary} is empty")
    first_ms, last_ms = entry_time_ms(first), entry_time_ms(last)
    if first_ms is None or last_ms is None:
        return OplogReading(
            primary, problem=f"an entry of {OPLOG_NAMESPACE} on {primary} has no time (ts, wall)"
        )
    return OplogReading(primary, window_s=max(0, last_ms - first_ms) / 1000)


def reusable(
    reading: OplogReading, age_s: float, behind: Sequence[tuple[str, int]], bands: Thresholds
) -> bool:
    """Whether a window read `age_s` ago may stand for this run's, given the secondaries
    `behind` now (name, ms behind the primary, delay included).

    Why the grade stays right: the window only shrinks when the oplog is written faster than
    it was over the whole window; to halve within 1 % of its length, writes must run at about
    50 times their average rate (a burst that makes the secondaries lag: graded every run).
    So a reading is used again only while every secondary is far enough from `bands.yellow`
    that a window halved since would still grade GREEN; nearer, the window is read every run.
    A failed read is retried every run.
    """
    window_s = reading.window_s
    if window_s is None or not 0 <= age_s < min(window_s * REUSE_SHARE, REUSE_MAX_S):
        return False
    return all(used_share(window_s, ms) * 2 < bands.yellow for _, ms in behind)


def map_error(
    exc: mongo_errors.PyMongoError, spec: MongoReplicationLagSpec, ctx: ProbeContext
) -> str:
    """The driver's error in the words the lag lines use."""
    return str(map_mongo_error(exc, spec, ctx))


def entry_time_ms(entry: Mapping[str, Any]) -> int | None:
    """An oplog entry's time: `wall` (ms, MongoDB 4.2+) when present, else `ts` (seconds)."""
    wall = entry.get("wall")
    if isinstance(wall, dt.datetime):
        if wall.tzinfo is None:
            wall = wall.replace(tzinfo=dt.UTC)
        return round(wall.timestamp() * 1000)
    if isinstance(wall, DatetimeMS):
        return int(wall)
    ts = entry.get("ts")
    if isinstance(ts, Timestamp):
        return ts.time * 1000
    return None


def used_share(window_s: float, behind_ms: int) -> float:
    """The share of the window a member `behind_ms` behind the primary uses (1: all of it)."""
    if window_s <= 0:
        return 0.0 if behind_ms <= 0 else float("inf")
    return behind_ms / 1000 / window_s


def headroom_s(window_s: float, behind_ms: int) -> float:
    """Window - lag: how much further behind the member may fall before it needs a resync."""
    return window_s - behind_ms / 1000


def grade_oplog(
    reading: OplogReading, behind: Sequence[tuple[str, int]], bands: Thresholds
) -> Line:
    """One summary line: the window, and the least headroom of the secondaries `behind`
    (name, ms behind the primary, delay included), graded on the share of the window used."""
    if reading.window_s is None:
        return Line(f"- oplog window unknown: {reading.problem}", reading.problem_grade)
    window_s = reading.window_s
    head = f"- oplog window {format_span(window_s)} on {reading.primary}"
    if not behind:
        return Line(f"{head}; no secondary to measure headroom against", Grade.GREEN)
    grade = max(
        (grade_value(used_share(window_s, ms), bands) for _, ms in behind), key=lambda g: g.rank
    )
    # Least headroom = furthest behind; on a tie, the first in member order.
    name, behind_ms = max(behind, key=lambda member: member[1])
    room_s = headroom_s(window_s, behind_ms)
    if room_s >= 0:
        return Line(f"{head}; least headroom {format_span(room_s)} ({name})", grade)
    return Line(
        f"{head}; no headroom: {name} is {format_span(-room_s)} further behind than the window",
        grade,
    )
