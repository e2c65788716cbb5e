"""Noticing changes of the contexts folder: change notification (inotify), polling as a fallback.

An idle watch costs nothing worth measuring: inotify wakes the watch when an entry of the folder
changes, and nothing else reads the folder meanwhile. A change is applied once it has settled
(two looks at the folder's stat data, SETTLE_S apart, agree: a copy of several files is not
applied half-way through), and only if the files' contents differ from those last read.

Kubernetes updates a mounted ConfigMap by swapping the hidden `..data` symlink to a new hidden
folder: the events of those hidden entries wake the watch, and the files are compared through
their symlinks. Where notification cannot work (a network or FUSE file system, where a change
made on another machine raises no event here) or cannot be set up, the folder listing and the
files' stat data are polled instead; no file is read until they change.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from watchfiles._rust_notify import RustNotify

from zeroprobe.config.loader import SPEC_SUFFIXES
from zeroprobe.config.settings import WatchMode

if TYPE_CHECKING:
    from zeroprobe.engine.reload import Reloader

log = logging.getLogger(__name__)

#: Two looks this far apart must agree before a change is applied (at most the poll interval).
SETTLE_S = 0.5
# watchfiles groups events into one batch until none came for _STEP_MS, or _DEBOUNCE_MS in all;
# while idle its thread wakes every _STEP_MS to look at the stop event (50 ms, its default,
# cost 0.1 % of a core; 200 ms too little to measure).
_STEP_MS = 200
_DEBOUNCE_MS = 1_600
TRIGGER = "contexts folder changed"

#: File systems where a change made elsewhere (another machine, a VM's host) raises no inotify
#: event here; `fuse.*` (sshfs, s3fs, gcsfuse, Docker Desktop's mounts) counts too.
REMOTE_FILE_SYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "9p",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "virtiofs",
        "vboxsf",
        "vmhgfs",
        "fuse",
    }
)


class NotifyUnavailableError(OSError):
    """Change notification cannot be set up (or failed) for the folder."""


@dataclass(frozen=True, slots=True)
class Listing:
    """One look at the folder that reads no file: names, symlink texts and stat data."""

    #: A hash of (name, symlink or not, size, mtime, ctime, inode, device) of every spec file.
    digest: int
    #: (st_dev, st_ino) of the folder through symlinks; None when it cannot be read.
    folder_id: tuple[int, int] | None = None
    #: With `resolve`: directories outside the folder that spec files' symlinks lead into,
    #: and those files (a notified watch watches there too).
    outside: frozenset[str] = frozenset()
    targets: frozenset[str] = frozenset()


def is_spec_name(name: str) -> bool:
    """A name the loader reads (hidden files, Kubernetes' `..data` among them, are not)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in SPEC_SUFFIXES


def look(folder: Path, resolve: bool = False) -> Listing:
    """The folder's spec files as stat data: one stat per file (through symlinks), no reads, so
    cheap enough to poll. Any write changes a file's size, mtime or ctime; a replaced file (an
    editor's rename, a ConfigMap's `..data` swap to a new folder) its inode."""
    rows: list[tuple[str, bool, int, int, int, int, int] | tuple[str, int]] = []
    try:
        folder_stat = os.stat(folder)
        with os.scandir(folder) as scan:
            entries = [e for e in scan if is_spec_name(e.name)]
    except OSError as exc:
        return Listing(hash(("unreadable folder", exc.errno)))
    real = os.path.realpath(folder) + os.sep if resolve else ""
    outside: set[str] = set()
    targets: set[str] = set()
    for entry in entries:
        try:
            info = entry.stat()
        except OSError as exc:
            rows.append((entry.name, exc.errno or 0))
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        symlink = entry.is_symlink()
        rows.append(
            (
                entry.name,
                symlink,
                info.st_size,
                info.st_mtime_ns,
                info.st_ctime_ns,
                info.st_ino,
                info.st_dev,
            )
        )
        if symlink and resolve:
            target = os.path.realpath(entry.path)
            if not target.startswith(real):
                outside.add(os.path.dirname(target))
                targets.add(target)
    rows.sort()
    return Listing(
        # Compared within this process only: a hash of the rows is enough, and cheap.
        hash(tuple(rows)),
        (folder_stat.st_dev, folder_stat.st_ino),
        frozenset(outside),
        frozenset(targets),
    )


def _folder_id(folder: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def file_system_type(folder: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str | None:
    """The type of the file system holding `folder` (`ext4`, `tmpfs`, `nfs4`), from the
    mount table; None where it cannot be told."""
    try:
        real = os.path.realpath(folder)
        lines = mountinfo.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError:
        return None
    best, kind = "", None
    for line in lines:
        fields = line.split()
        if "-" not in fields[6:] or len(fields) < 5:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        # A later line over the same mount point is a mount on top of the earlier one.
        if inside and len(point) >= len(best):
            best, kind = point, fields[fields.index("-", 6) + 1]
    return kind


def is_remote(kind: str | None) -> bool:
    """True for a file system where changes made elsewhere raise no event here."""
    return kind is not None and (kind in REMOTE_FILE_SYSTEMS or kind.startswith("fuse."))


class ContextsWatcher:
    """Watches the contexts folder and has the Reloader apply a change once it has settled."""

    def __init__(self, reloader: Reloader, poll_s: float, mode: WatchMode = WatchMode.AUTO) -> None:
        self._reloader = reloader
        self._folder = reloader.folder
        # The paths change notification reports start with the path it was given.
        self._folder_path = os.path.abspath(reloader.folder)
        self._poll_s = poll_s
        self._settle_s = min(SETTLE_S, poll_s)
        self._mode = mode
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        #: How it watches once started: WatchMode.NOTIFY or WatchMode.POLL (None before).
        self.method: WatchMode | None = None

    def start(self) -> None:
        """Start watching in the background."""
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        """Stop watching (a reload under way is the Reloader's to cancel)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        reason = await asyncio.to_thread(self._reason_to_poll)
        if reason is None:
            try:
                await self._notify()
                return
            except NotifyUnavailableError as exc:
                log.warning("change notification for %s is unavailable: %s", self._folder, exc)
                reason = "change notification unavailable"
        self.method = WatchMode.POLL
        log.info(
            "watching %s for changes: polling its listing and stat data every %g s (%s)",
            self._folder,
            self._poll_s,
            reason,
        )
        await self._poll()

    def _reason_to_poll(self) -> str | None:
        if self._mode is WatchMode.POLL:
            return "ZEROPROBE_CONTEXTS_WATCH=poll"
        if self._mode is WatchMode.AUTO:
            kind = file_system_type(self._folder)
            if is_remote(kind):
                return (
                    f"a {kind} file system, where a change made elsewhere raises no event; "
                    "ZEROPROBE_CONTEXTS_WATCH=notify to use notification anyway"
                )
        return None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                await self._check(await asyncio.to_thread(look, self._folder))
            except Exception:
                log.exception("watching %s for changes failed", self._folder)

    async def _check(self, current: Listing, force: bool = False) -> None:
        """Reload when the files' stat data differ from those of the last read, once settled."""
        if not force and current.digest == self._reloader.listing.digest:
            return
        previous = current
        while True:
            await asyncio.sleep(self._settle_s)
            current = await asyncio.to_thread(look, self._folder)
            if current.digest == previous.digest:
                break
            previous = current
        # In a task of the Reloader's: stopping the watch does not cancel a reload half-way.
        await asyncio.wait([self._reloader.request_if_changed(TRIGGER)])

    async def _notify(self) -> None:
        """Watch with change notification until stopped; NotifyUnavailableError if it fails."""
        reloader = self._reloader
        executor = concurrent.futures.ThreadPoolExecutor(1, "zeroprobe-contexts-watch")
        try:
            while not self._stop.is_set():
                base = reloader.listing
                if base.folder_id is None:
                    # No folder to watch (yet, or any more): look for it at each poll.
                    await asyncio.sleep(self._poll_s)
                    await self._guarded_check(await asyncio.to_thread(look, self._folder))
                    continue
                paths = [self._folder_path, *sorted(base.outside)]
                try:
                    notify = RustNotify(paths, False, False, 0, False, False)
                except FileNotFoundError:
                    # Gone since the last look (the folder, or where a symlink led): look again,
                    # and record what is there now even if no spec file changed.
                    await asyncio.sleep(self._poll_s)
                    current = await asyncio.to_thread(look, self._folder)
                    await self._guarded_check(current, force=True)
                    continue
                except Exception as exc:
                    raise NotifyUnavailableError(str(exc)) from exc
                with notify:
                    if self.method is None:
                        self.method = WatchMode.NOTIFY
                        log.info(
                            "watching %s for changes: change notification (inotify)",
                            self._folder,
                        )
                    await self._events(notify, base, executor)
        finally:
            executor.shutdown(wait=False)

    async def _events(
        self, notify: RustNotify, base: Listing, executor: concurrent.futures.Executor
    ) -> None:
        """Handle the events of one watch until the folder (or where its symlinks lead) is no
        longer the one it watches."""
        reloader = self._reloader
        timeout_ms = max(1, round(self._poll_s * 1000))
        # A change made before this watch was set shows in a look.
        await self._guarded_check(await asyncio.to_thread(look, self._folder))
        while (reloader.listing.folder_id, reloader.listing.outside) == (
            base.folder_id,
            base.outside,
        ):
            pending = executor.submit(notify.watch, _DEBOUNCE_MS, _STEP_MS, timeout_ms, self._stop)
            try:
                changes = await asyncio.wrap_future(pending)
            except asyncio.CancelledError:
                # close() must not run while the thread is inside watch(): it returns within
                # a step once the stop event is set.
                self._stop.set()
                concurrent.futures.wait([pending], timeout=5)
                raise
            except Exception as exc:
                raise NotifyUnavailableError(f"watching failed: {exc}") from exc
            if changes == "stop":
                return
            if isinstance(changes, set):
                if any(self._relevant(path, base) for _, path in changes):
                    await self._guarded_check(await asyncio.to_thread(look, self._folder))
            elif _folder_id(self._folder) != base.folder_id:
                # No event tells that the folder was replaced (renamed away, a symlink to it
                # re-pointed): each timeout (one poll interval) checks.
                current = await asyncio.to_thread(look, self._folder)
                await self._guarded_check(current, force=True)

    async def _guarded_check(self, current: Listing, force: bool = False) -> None:
        try:
            await self._check(current, force)
        except Exception:
            log.exception("watching %s for changes failed", self._folder)

    def _relevant(self, path: str, base: Listing) -> bool:
        """An event the loader could see: a spec file, a hidden `..` entry of Kubernetes'
        ConfigMap swap, the folder itself, or a file a spec's symlink leads to."""
        if path == self._folder_path:
            return True
        head, name = os.path.split(path)
        if head == self._folder_path:
            return name.startswith("..") or is_spec_name(name)
        return path in base.targets
