"""Reloading the context specs without a restart: on SIGHUP, POST /-/reload, or a folder change.

A reload re-reads every spec file. A valid set is applied (Engine.apply: added probes start,
removed ones vanish, changed ones restart, unchanged ones are not touched); a set with any
error is rejected whole, every error is logged, and the running set stays as it was.
Kubernetes updates a mounted ConfigMap by pointing the hidden `..data` symlink at a new
folder, so the watcher compares what the files resolve to, not the folder's own mtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from zeroprobe.engine import Engine, ReloadSummary
from zeroprobe.errors import SpecProblem
from zeroprobe.loader import load_contexts, spec_files

log = logging.getLogger(__name__)

RELOAD_PATH = "/-/reload"


def fingerprint(folder: Path) -> str:
    """A digest of the spec files as the loader reads them: name, resolved path, size, mtime
    and content of each, through symlinks. Hidden files (`..data`) count only through them."""
    digest = hashlib.sha256()
    try:
        files = spec_files(folder)
    except OSError as exc:
        return f"unreadable folder: {exc.strerror}"
    for path in files:
        digest.update(path.name.encode("utf-8", "surrogateescape") + b"\0")
        try:
            resolved = path.resolve(strict=True)
            stat = resolved.stat()
            content = resolved.read_bytes()
        except OSError as exc:
            digest.update(f"unreadable: {exc.errno}\0".encode())
            continue
        digest.update(f"{resolved}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


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
        self._tasks: set[asyncio.Task[ReloadOutcome]] = set()
        #: The folder's fingerprint when it was last read (the engine's specs were read just
        #: before this object was made): the watcher reloads when it differs.
        self.seen = fingerprint(self.folder)

    async def reload(self, trigger: str) -> ReloadOutcome:
        """Re-read every spec; apply the set when it is valid, keep the old one otherwise."""
        async with self._lock:
            engine = self.engine
            self.seen = await asyncio.to_thread(fingerprint, self.folder)
            report = await asyncio.to_thread(load_contexts, self.folder, engine.environ)
            # A problem may quote a value of a file (a URI with a password in a wrong field):
            # POST /-/reload answers with them, so they are scrubbed here, once.
            errors = tuple(problem.redacted(engine.redact) for problem in report.errors)
            warnings = tuple(problem.redacted(engine.redact) for problem in report.warnings)
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
                return ReloadOutcome(
                    trigger, None, errors, warnings, tuple(sorted(engine.contexts))
                )
            summary = await engine.apply(report.specs)
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

    def _done(self, task: asyncio.Task[ReloadOutcome]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("reload failed", exc_info=task.exception())

    async def close(self) -> None:
        """Cancel reloads still running (the service is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ContextsWatcher:
    """Polls the contexts folder and reloads when its fingerprint has changed and settled."""

    def __init__(self, reloader: Reloader, poll_s: float) -> None:
        self._reloader = reloader
        self._poll_s = poll_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start polling in the background."""
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        """Stop polling (a reload under way is the Reloader's to cancel)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        reloader = self._reloader
        previous = reloader.seen
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                current = await asyncio.to_thread(fingerprint, reloader.folder)
            except Exception:
                log.exception("watching %s for changes failed", reloader.folder)
                continue
            # Act once two looks agree: a copy of several files seen half-way through (some
            # removed, some not yet written) is not applied. The Reloader logs any failure.
            if current == previous and current != reloader.seen:
                await asyncio.wait([reloader.request("contexts folder changed")])
            previous = current


@contextlib.asynccontextmanager
async def reload_triggers(reloader: Reloader, poll_s: float) -> AsyncIterator[None]:
    """While inside: SIGHUP reloads, and so does a change of the contexts folder (poll_s > 0)."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reloader.request, "SIGHUP")
    watcher = ContextsWatcher(reloader, poll_s) if poll_s > 0 else None
    if watcher is not None:
        watcher.start()
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        if watcher is not None:
            await watcher.stop()
        await reloader.close()


RELOADER = web.AppKey("reloader", Reloader)


async def reload_endpoint(request: web.Request) -> web.Response:
    """POST /-/reload: 200 with what changed, or 422 with every error (nothing changed)."""
    outcome = await asyncio.shield(request.app[RELOADER].request(f"POST {RELOAD_PATH}"))
    return web.json_response(outcome.as_json(), status=200 if outcome.ok else 422)
