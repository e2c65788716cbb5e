"""Reloading the context specs without a restart: on SIGHUP, POST /-/reload, or a folder change.

A reload re-reads every spec file. A valid set is applied (Engine.apply: added probes start,
removed ones vanish, changed ones restart, unchanged ones are not touched); a set with any
error is rejected whole, every error is logged, and the running set stays as it was.
Kubernetes updates a mounted ConfigMap by pointing the hidden `..data` symlink at a new
folder, so files are compared through their symlinks, not by the folder's own mtime; how the
folder is watched is watch.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from zeroprobe.config.loader import load_contexts, spec_files
from zeroprobe.config.problems import SpecProblem
from zeroprobe.config.settings import WatchMode
from zeroprobe.engine.core import Engine, ReloadSummary
from zeroprobe.engine.watch import SETTLE_S, ContextsWatcher, Listing, look

log = logging.getLogger(__name__)

RELOAD_PATH = "/-/reload"


def fingerprint(folder: Path) -> str:
    """A digest of what the loader reads: the name and content of each spec file, through
    symlinks (hidden files, `..data` among them, count only through them). A file touched,
    or replaced by one of the same content, does not change it."""
    digest = hashlib.sha256()
    try:
        files = spec_files(folder)
    except OSError as exc:
        return f"unreadable folder: {exc.strerror}"
    for path in files:
        digest.update(path.name.encode("utf-8", "surrogateescape") + b"\0")
        try:
            content = path.read_bytes()
        except OSError as exc:
            digest.update(f"unreadable: {exc.errno}\0".encode())
            continue
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


def file_stat(path: Path | None) -> tuple[int, ...] | None:
    """One file's stat data through symlinks (a ConfigMap's `..data` swap changes the inode),
    or the error number when it cannot be read; None when there is no file to watch."""
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError as exc:
        return (exc.errno or 0,)
    return (info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def file_digest(path: Path | None) -> str:
    """A digest of one file's content ("" for no file; the error for an unreadable one)."""
    if path is None:
        return ""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.errno}"


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """One reload: what it applied (None when rejected) and every problem it found."""

    trigger: str
    summary: ReloadSummary | None
    errors: tuple[SpecProblem, ...]
    warnings: tuple[SpecProblem, ...]
    probing: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the new set was applied."""
        return self.summary is not None

    def as_json(self) -> dict[str, object]:
        """The answer of POST /-/reload; a rejection has the shape of every error body."""
        warnings = [str(p) for p in self.warnings]
        if self.summary is None:
            return {
                "error": f"{len(self.errors)} error(s) in the context specs: nothing changed, "
                f"still probing the {len(self.probing)} spec(s) loaded before",
                "status": 422,
                "errors": [str(p) for p in self.errors],
                "warnings": warnings,
                "probing": list(self.probing),
            }
        return {"status": "ok", **self.summary.as_json(), "warnings": warnings}


class Reloader:
    """Re-reads the contexts folder and applies a valid set to the engine, one at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.folder = Path(engine.settings.contexts)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[ReloadOutcome | None]] = set()
        #: The folder's stat data and fingerprint when it was last read (the engine's specs
        #: were read just before this object was made): the watcher looks for a change of the
        #: first, and reloads when the second differs.
        self.listing: Listing = look(self.folder, resolve=True)
        self.seen = fingerprint(self.folder)
        #: The notifiers file, reloaded with the specs: its stat data and content as last read.
        notifiers = engine.settings.notifiers
        self.notifiers_path = Path(notifiers) if notifiers else None
        self.notifiers_stat = file_stat(self.notifiers_path)
        self.notifiers_seen = file_digest(self.notifiers_path)

    async def reload(self, trigger: str) -> ReloadOutcome:
        """Re-read every spec; apply the set when it is valid, keep the old one otherwise."""
        async with self._lock:
            await self._look()
            return await self._load(trigger)

    async def reload_if_changed(self, trigger: str) -> ReloadOutcome | None:
        """Reload only when a file's content differs from the last read (None: no reload)."""
        async with self._lock:
            if not await self._look():
                return None
            return await self._load(trigger)

    async def _look(self) -> bool:
        """Record the folder's stat data and fingerprint; True when the fingerprint changed.
        Stat data first: a change made meanwhile shows as a change of them at the next look."""
        self.listing = await asyncio.to_thread(look, self.folder, True)
        self.notifiers_stat = await asyncio.to_thread(file_stat, self.notifiers_path)
        seen = await asyncio.to_thread(fingerprint, self.folder)
        notifiers_seen = await asyncio.to_thread(file_digest, self.notifiers_path)
        changed = (seen, notifiers_seen) != (self.seen, self.notifiers_seen)
        self.seen, self.notifiers_seen = seen, notifiers_seen
        return changed

    async def _load(self, trigger: str) -> ReloadOutcome:
        engine = self.engine
        report = await asyncio.to_thread(load_contexts, self.folder, engine.environ)
        # The notifiers file is reloaded with the specs: an error in either rejects both.
        notifiers = await asyncio.to_thread(engine.load_notifiers)
        # A problem may quote a value of a file (a URI with a password in a wrong field):
        # POST /-/reload answers with them, so they are scrubbed here, once.
        errors = tuple(p.redacted(engine.redact) for p in [*report.errors, *notifiers.errors])
        warnings = tuple(p.redacted(engine.redact) for p in [*report.warnings, *notifiers.warnings])
        for problem in warnings:
            log.warning("%s", problem)
        if errors:
            engine.metrics.record_config_load(False)
            log.error(
                "reload (%s) rejected: %d error(s) in %s; still probing the %d spec(s) "
                "loaded before",
                trigger,
                len(errors),
                self.folder,
                len(engine.contexts),
            )
            for problem in errors:
                log.error("%s", problem)
            return ReloadOutcome(trigger, None, errors, warnings, tuple(sorted(engine.contexts)))
        summary = await engine.apply(report.specs)
        await engine.apply_notifiers(notifiers.notifiers)
        engine.metrics.record_config_load(True)
        log.info("reload (%s): %s", trigger, summary)
        return ReloadOutcome(trigger, summary, errors, warnings, tuple(sorted(engine.contexts)))

    def request(self, trigger: str) -> asyncio.Task[ReloadOutcome]:
        """Reload in a task of its own: a signal handler cannot await, and a client that
        hangs up must not cancel a reload half-way."""
        task = asyncio.get_running_loop().create_task(self.reload(trigger))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def request_if_changed(self, trigger: str) -> asyncio.Task[ReloadOutcome | None]:
        """reload_if_changed in a task of its own (as `request`)."""
        task = asyncio.get_running_loop().create_task(self.reload_if_changed(trigger))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[ReloadOutcome | None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("reload failed", exc_info=task.exception())

    async def close(self) -> None:
        """Cancel reloads still running (the service is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def reload_triggers(
    reloader: Reloader, poll_s: float, watch: WatchMode = WatchMode.AUTO
) -> AsyncIterator[None]:
    """While inside: SIGHUP reloads, and so does a change of the contexts folder (poll_s > 0:
    watched as `watch` says, polled every poll_s where it is polled)."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reloader.request, "SIGHUP")
    watcher = ContextsWatcher(reloader, poll_s, watch) if poll_s > 0 else None
    if watcher is not None:
        watcher.start()
    notifiers_watch = None
    if poll_s > 0 and reloader.notifiers_path is not None:
        notifiers_watch = loop.create_task(watch_notifiers_file(reloader, poll_s))
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        if notifiers_watch is not None:
            notifiers_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await notifiers_watch
        if watcher is not None:
            await watcher.stop()
        await reloader.close()


NOTIFIERS_TRIGGER = "notifiers file changed"


async def watch_notifiers_file(reloader: Reloader, poll_s: float) -> None:
    """Reload when the notifiers file changes: its stat data polled every `poll_s`.

    One file, one `stat` a poll: too cheap to be worth change notification, and it works the
    same on every file system and through a ConfigMap's symlinks (which may sit in another
    folder than the contexts). A change is applied once two looks SETTLE_S apart agree, and
    only if the content differs from the last read (the reload compares it)."""
    path = reloader.notifiers_path
    settle_s = min(SETTLE_S, poll_s)
    while True:
        await asyncio.sleep(poll_s)
        current = await asyncio.to_thread(file_stat, path)
        if current == reloader.notifiers_stat:
            continue
        try:
            while True:
                await asyncio.sleep(settle_s)
                settled = await asyncio.to_thread(file_stat, path)
                if settled == current:
                    break
                current = settled
            await asyncio.wait([reloader.request_if_changed(NOTIFIERS_TRIGGER)])
        except Exception:
            log.exception("watching %s for changes failed", path)
        # Even when the content did not change (a touch): this stat data is now the known one.
        reloader.notifiers_stat = current


RELOADER = web.AppKey("reloader", Reloader)


async def reload_endpoint(request: web.Request) -> web.Response:
    """POST /-/reload: 200 with what changed, or 422 with every error (nothing changed)."""
    outcome = await asyncio.shield(request.app[RELOADER].request(f"POST {RELOAD_PATH}"))
    return web.json_response(outcome.as_json(), status=200 if outcome.ok else 422)
