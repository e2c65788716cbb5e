"""The durable outbox: each sink's pending messages and each probe's last notified colour, in
one SQLite file under the data directory.

Every call runs on one thread of its own (the connection never leaves it), so the event loop
never waits on the disk; each write is one short transaction. WAL with synchronous=NORMAL:
a committed transaction survives a killed process (only a power cut may lose the newest
ones), and readers never block the writer.

A transition is written for every sink it concerns, together with the probe's new last
notified colour, in one transaction: either both are on disk, or neither is and the change is
seen again after a restart (the first result differs from the colour last notified). A sink's
pending transitions are *sealed* into a message (one event_id) when its coalescing window
closes; a sealed message is sent until it is delivered, rejected or too old, with the same
event_id and the same transitions, across restarts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from schemas.grading import Grade
from zeroprobe.notify.transitions import Message, Transition

log = logging.getLogger(__name__)

DB_NAME = "zeroprobe-notify.sqlite3"
SCHEMA_VERSION = "1"
#: Longest wait for the database lock (another process on the same file).
BUSY_TIMEOUT_S = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notified (
    service_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    since_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    recorded_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    message_id INTEGER
);
CREATE INDEX IF NOT EXISTS transitions_by_sink ON transitions (sink, message_id, id);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_sink ON messages (sink, id);
"""

T = TypeVar("T")


class OutboxError(Exception):
    """The outbox database cannot be used."""


@dataclass(frozen=True, slots=True)
class Notified:
    """A probe's last notified colour and since when (epoch ms)."""

    status: Grade
    since_ms: int


@dataclass(frozen=True, slots=True)
class SinkBacklog:
    """A sink's pending transitions (sealed or not) and when the oldest was recorded."""

    pending: int
    oldest_ms: int | None


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


class Outbox:
    """The SQLite outbox; `open()` first. Every method runs on the outbox's own thread."""

    def __init__(self, data_dir: str | os.PathLike[str] | None) -> None:
        #: None: memory only (nothing survives a restart).
        self.path = Path(data_dir) / DB_NAME if data_dir is not None else None
        #: Why the outbox is memory-only although a data directory was given ("" when durable).
        self.degraded = ""
        self._db: sqlite3.Connection | None = None
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="outbox")

    @property
    def durable(self) -> bool:
        """True when what is written survives a restart."""
        return self.path is not None and not self.degraded

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, fn, *args)

    # Opening ----------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the database. A corrupt file is moved aside and a new one made; a
        folder or file that cannot be written leaves the outbox in memory only. Both are
        logged as errors; neither stops the service (it still probes and serves)."""
        await self._call(self._open)

    def _open(self) -> None:
        if self.path is None:
            self._db = self._connect(":memory:")
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect(str(self.path))
            self._check_writable(self._db)
            return
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            if not _is_corrupt(exc):
                self._degrade(f"cannot write {self.path}: {exc}")
                return
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error(
                "the notification outbox %s is corrupt (%s): moved aside to %s and started "
                "afresh; its pending messages and last notified colours are lost",
                self.path,
                exc,
                aside.name,
            )
            try:
                os.replace(self.path, aside)
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(f"{self.path}{suffix}")
                self._db = self._connect(str(self.path))
                self._check_writable(self._db)
            except (OSError, sqlite3.Error) as again:
                self._close_quietly()
                self._degrade(f"cannot replace the corrupt {self.path}: {again}")
        except OSError as exc:
            self._close_quietly()
            self._degrade(f"cannot create {self.path.parent}: {exc.strerror or exc}")

    def _degrade(self, reason: str) -> None:
        self.degraded = reason
        log.error(
            "notification outbox: %s. Notifications go on from memory only: messages pending "
            "at a restart are lost, and a restart may notify a colour again. Fix the data "
            "directory (ZEROPROBE_DATA_DIR) and restart.",
            reason,
        )
        self._db = self._connect(":memory:")

    def _connect(self, target: str) -> sqlite3.Connection:
        db = sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        if target != ":memory:":
            # quick_check reads every page: a file that is not a database, or a damaged
            # one, fails here rather than at the first write under load.
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                db.close()
                raise sqlite3.DatabaseError(f"database disk image is malformed: {row}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    @staticmethod
    def _check_writable(db: sqlite3.Connection) -> None:
        with _transaction(db):
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (SCHEMA_VERSION,),
            )

    def _close_quietly(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    async def close(self) -> None:
        """Close the database and its thread."""
        with contextlib.suppress(RuntimeError):
            await self._call(self._close_quietly)
        self._thread.shutdown(wait=True)

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError("the outbox is not open")
        return self._db

    # Last notified colours ----------------------------------------------------------------------

    async def notified(self) -> dict[str, Notified]:
        """Every probe's last notified colour."""
        return await self._call(self._notified)

    def _notified(self) -> dict[str, Notified]:
        rows = self._conn.execute("SELECT service_id, status, since_ms FROM notified").fetchall()
        found = {}
        for service_id, status, since_ms in rows:
            with contextlib.suppress(ValueError):
                found[service_id] = Notified(Grade(status), int(since_ms))
        return found

    async def forget(self, service_ids: Sequence[str]) -> None:
        """Drop the last notified colour of probes no longer loaded."""
        await self._call(self._forget, list(service_ids))

    def _forget(self, service_ids: list[str]) -> None:
        with _transaction(self._conn) as db:
            db.executemany("DELETE FROM notified WHERE service_id = ?", [(s,) for s in service_ids])

    # Recording ------------------------------------------------------------------------------------

    async def record(self, entries: Sequence[tuple[Transition, Sequence[str]]]) -> None:
        """Write each transition for each of its sinks, and its probe's new last notified
        colour, all in one transaction."""
        await self._call(self._record, list(entries), now_ms())

    def _record(self, entries: list[tuple[Transition, Sequence[str]]], at_ms: int) -> None:
        with _transaction(self._conn) as db:
            for transition, sinks in entries:
                body = transition.dumps()
                db.executemany(
                    "INSERT INTO transitions (sink, recorded_ms, body) VALUES (?, ?, ?)",
                    [(sink, at_ms, body) for sink in sinks],
                )
                db.execute(
                    "INSERT INTO notified (service_id, status, since_ms) VALUES (?, ?, ?) "
                    "ON CONFLICT (service_id) DO UPDATE SET status = excluded.status, "
                    "since_ms = excluded.since_ms",
                    (transition.service_id, transition.new.value, transition.at_ms),
                )

    # A sink's queue ------------------------------------------------------------------------------

    async def oldest_unsealed_ms(self, sink: str) -> int | None:
        """When the oldest transition not yet in a message was recorded (None: none)."""
        return await self._call(self._oldest_unsealed_ms, sink)

    def _oldest_unsealed_ms(self, sink: str) -> int | None:
        row = self._conn.execute(
            "SELECT min(recorded_ms) FROM transitions WHERE sink = ? AND message_id IS NULL",
            (sink,),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    async def seal(self, sink: str, limit: int) -> bool:
        """Put up to `limit` of the sink's unsealed transitions, oldest first, into one new
        message with an event_id of its own; False when there were none."""
        return await self._call(self._seal, sink, limit, now_ms())

    def _seal(self, sink: str, limit: int, at_ms: int) -> bool:
        with _transaction(self._conn) as db:
            rows = db.execute(
                "SELECT id, recorded_ms FROM transitions WHERE sink = ? AND message_id IS NULL "
                "ORDER BY id LIMIT ?",
                (sink, limit),
            ).fetchall()
            if not rows:
                return False
            cursor = db.execute(
                "INSERT INTO messages (sink, event_id, created_ms, next_try_ms) "
                "VALUES (?, ?, ?, ?)",
                (sink, str(uuid.uuid4()), min(r[1] for r in rows), at_ms),
            )
            db.executemany(
                "UPDATE transitions SET message_id = ? WHERE id = ?",
                [(cursor.lastrowid, r[0]) for r in rows],
            )
            return True

    async def head(self, sink: str) -> Message | None:
        """The sink's oldest sealed message, None when there is none."""
        return await self._call(self._head, sink)

    def _head(self, sink: str) -> Message | None:
        db = self._conn
        row = db.execute(
            "SELECT id, event_id, created_ms, attempts, next_try_ms FROM messages "
            "WHERE sink = ? ORDER BY id LIMIT 1",
            (sink,),
        ).fetchone()
        if row is None:
            return None
        message_id, event_id, created_ms, attempts, next_try_ms = row
        bodies = db.execute(
            "SELECT body FROM transitions WHERE message_id = ? ORDER BY id", (message_id,)
        ).fetchall()
        transitions = []
        for (body,) in bodies:
            try:
                transitions.append(Transition.from_json(json.loads(body)))
            except (ValueError, KeyError, TypeError):
                log.error("outbox: an unreadable transition of sink %s was skipped", sink)
        return Message(
            id=message_id,
            sink=sink,
            event_id=event_id,
            created_ms=created_ms,
            attempts=attempts,
            next_try_ms=next_try_ms,
            transitions=tuple(transitions),
        )

    async def done(self, message_id: int) -> None:
        """Delete a delivered (or given up) message and its transitions."""
        await self._call(self._done, message_id)

    def _done(self, message_id: int) -> None:
        with _transaction(self._conn) as db:
            db.execute("DELETE FROM transitions WHERE message_id = ?", (message_id,))
            db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    async def defer(self, message_id: int, attempts: int, next_try_ms: int) -> None:
        """Note a failed attempt and when to try again."""
        await self._call(self._defer, message_id, attempts, next_try_ms)

    def _defer(self, message_id: int, attempts: int, next_try_ms: int) -> None:
        with _transaction(self._conn) as db:
            db.execute(
                "UPDATE messages SET attempts = ?, next_try_ms = ? WHERE id = ?",
                (attempts, next_try_ms, message_id),
            )

    async def backlog(self, sink: str) -> SinkBacklog:
        """The sink's pending transitions and the oldest one's time."""
        return await self._call(self._backlog, sink)

    def _backlog(self, sink: str) -> SinkBacklog:
        row = self._conn.execute(
            "SELECT count(*), min(recorded_ms) FROM transitions WHERE sink = ?", (sink,)
        ).fetchone()
        count, oldest = row if row is not None else (0, None)
        return SinkBacklog(int(count), None if oldest is None else int(oldest))

    async def purge(self, keep: Iterable[str]) -> dict[str, int]:
        """Drop the queues of sinks not in `keep` (removed from the notifiers file); the
        number of transitions dropped per sink."""
        return await self._call(self._purge, set(keep))

    def _purge(self, keep: set[str]) -> dict[str, int]:
        with _transaction(self._conn) as db:
            rows = db.execute("SELECT sink, count(*) FROM transitions GROUP BY sink").fetchall()
            dropped = {sink: int(count) for sink, count in rows if sink not in keep}
            for sink in dropped:
                db.execute("DELETE FROM transitions WHERE sink = ?", (sink,))
                db.execute("DELETE FROM messages WHERE sink = ?", (sink,))
            return dropped


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    """A file that is not a database or is damaged, as opposed to one that cannot be written."""
    if isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text
