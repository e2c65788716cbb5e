"""The contexts folder watch (zeroprobe/engine/watch.py): change notification and the polling
fallback apply an added, changed or removed spec within 2 s, in a plain folder and in a
Kubernetes ConfigMap volume (the `..data` symlink swap); a copy seen half-way is not applied;
a change of nothing is not reloaded; `auto` polls on network file systems.

A real Engine (not started: nothing probes) with a real Reloader and ContextsWatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests import test_scheduler
from tests.test_reload import folder_engine, kubernetes_volume, mongo_spec, write
from zeroprobe.config.settings import WatchMode
from zeroprobe.engine import watch as watch_module
from zeroprobe.engine.core import Engine
from zeroprobe.engine.reload import Reloader
from zeroprobe.engine.watch import ContextsWatcher, file_system_type, is_remote, look

engines = test_scheduler.engines

#: The contract: a change is applied within 2 s (notification, or polling every second).
APPLIED_S = 2.0
POLL_S = 1.0
MODES = [WatchMode.NOTIFY, WatchMode.POLL]


async def within(condition: Callable[[], bool], what: str, timeout_s: float = APPLIED_S) -> float:
    """Seconds until `condition` holds; fails past `timeout_s`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


class Layout:
    """A contexts folder laid out as files, or as the kubelet lays out a ConfigMap volume."""

    def __init__(self, folder: Path, kubernetes: bool) -> None:
        self.folder, self.kubernetes = folder, kubernetes
        self.files: dict[str, str] = {}
        self._version = 0

    def set(self, **files: str | None) -> None:
        """Write (text) or remove (None) files, all at once."""
        for name, text in files.items():
            if text is None:
                self.files.pop(name, None)
            else:
                self.files[name] = text
        if self.kubernetes:
            self._version += 1
            kubernetes_volume(self.folder, self.files, f"2026_11_22_10_00_00.{self._version}")
            return
        for name, text in files.items():
            if text is None:
                (self.folder / name).unlink()
            else:
                write(self.folder, name, text)


Watching = Callable[..., contextlib.AbstractAsyncContextManager[tuple[Engine, ContextsWatcher]]]


@pytest.fixture
def watching(engines: list[Engine]) -> Watching:
    """An engine of a folder, its Reloader and a started ContextsWatcher (stopped after)."""

    @contextlib.asynccontextmanager
    async def make(
        folder: Path, mode: WatchMode, poll_s: float = POLL_S
    ) -> AsyncIterator[tuple[Engine, ContextsWatcher]]:
        engine = folder_engine(folder, engines)
        reloader = Reloader(engine)
        watcher = ContextsWatcher(reloader, poll_s, mode)
        watcher.start()
        try:
            yield engine, watcher
        finally:
            await watcher.stop()
            await reloader.close()

    return make


@pytest.mark.parametrize("kubernetes", [False, True], ids=["plain-folder", "configmap"])
@pytest.mark.parametrize("mode", MODES, ids=str)
async def test_an_added_changed_or_removed_spec_is_applied_within_2s(
    tmp_path: Path,
    watching: Watching,
    mode: WatchMode,
    kubernetes: bool,
) -> None:
    layout = Layout(tmp_path / "contexts", kubernetes)
    layout.set(**{"a.yaml": mongo_spec("w.a"), "b.md": f"---\n{mongo_spec('w.b')}---\n# B\n"})
    async with watching(layout.folder, mode) as (engine, watcher):
        await within(lambda: watcher.method is not None, "the watch started")
        assert watcher.method is mode

        layout.set(**{"c.yml": mongo_spec("w.c")})
        await within(lambda: "w.c" in engine.contexts, "added w.c")

        layout.set(**{"a.yaml": mongo_spec("w.a", "description: changed\n")})
        await within(lambda: engine.contexts["w.a"].spec.description == "changed", "changed w.a")

        layout.set(**{"b.md": None})
        await within(lambda: "w.b" not in engine.contexts, "removed w.b")
        assert sorted(engine.contexts) == ["w.a", "w.c"]


@pytest.mark.parametrize("mode", MODES, ids=str)
async def test_a_copy_seen_half_way_is_not_applied(
    tmp_path: Path,
    watching: Watching,
    mode: WatchMode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "contexts"
    write(folder, "a.yaml", mongo_spec("copy.a"))
    async with watching(folder, mode) as (engine, _):
        await asyncio.sleep(0.3)
        with caplog.at_level(logging.INFO, logger="zeroprobe.engine.reload"):
            # Three files, a pause shorter than the settling time between each.
            for index in range(3):
                write(folder, f"n{index}.yaml", mongo_spec(f"copy.n{index}"))
                await asyncio.sleep(0.2)
            await within(lambda: len(engine.contexts) == 4, "the copy applied", 4.0)
            await asyncio.sleep(0.6)
        reloads = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reload")]
        assert reloads == [
            "reload (contexts folder changed): added copy.n0, copy.n1, copy.n2; 1 unchanged"
        ]


@pytest.mark.parametrize("mode", MODES, ids=str)
async def test_a_touch_or_a_file_the_loader_skips_causes_no_reload(
    tmp_path: Path,
    watching: Watching,
    mode: WatchMode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "contexts"
    spec = write(folder, "a.yaml", mongo_spec("quiet.a"))
    async with watching(folder, mode) as (engine, watcher):
        await within(lambda: watcher.method is not None, "the watch started")
        with caplog.at_level(logging.INFO, logger="zeroprobe.engine.reload"):
            os.utime(spec)  # same content, new mtime: looked at, not reloaded
            (folder / "notes.txt").write_text("not a spec", encoding="utf-8")
            (folder / ".a.yaml.swp").write_text("an editor's", encoding="utf-8")
            await asyncio.sleep(APPLIED_S)
        assert not [r for r in caplog.records if r.getMessage().startswith("reload")]
        assert list(engine.contexts) == ["quiet.a"]


async def test_notify_follows_a_replaced_folder_and_symlinks_that_lead_outside(
    tmp_path: Path, watching: Watching
) -> None:
    folder = tmp_path / "contexts"
    elsewhere = write(tmp_path / "elsewhere", "x.yaml", mongo_spec("out.x"))
    write(folder, "a.yaml", mongo_spec("out.a"))
    (folder / "x.yaml").symlink_to(elsewhere)
    async with watching(folder, WatchMode.NOTIFY) as (engine, watcher):
        await within(lambda: watcher.method is WatchMode.NOTIFY, "the watch started")

        # Edited in place where the symlink leads: no event in the folder itself.
        elsewhere.write_text(mongo_spec("out.x", "description: edited\n"), encoding="utf-8")
        await within(
            lambda: engine.contexts["out.x"].spec.description == "edited", "the target edited"
        )

        # The folder renamed away and another one moved in under its name.
        replacement = tmp_path / "next"
        write(replacement, "b.yaml", mongo_spec("out.b"))
        folder.rename(tmp_path / "old")
        replacement.rename(folder)
        await within(lambda: sorted(engine.contexts) == ["out.b"], "the new folder applied")

        # ... and that new folder is watched.
        write(folder, "c.yaml", mongo_spec("out.c"))
        await within(lambda: "out.c" in engine.contexts, "added to the new folder")


async def test_auto_polls_on_a_network_file_system_and_notify_falls_back_to_polling(
    tmp_path: Path,
    watching: Watching,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "contexts"
    write(folder, "a.yaml", mongo_spec("fs.a"))
    async with watching(folder, WatchMode.AUTO) as (_, watcher):
        await within(lambda: watcher.method is not None, "the watch started")
        assert watcher.method is WatchMode.NOTIFY, file_system_type(folder)

    monkeypatch.setattr(watch_module, "file_system_type", lambda folder: "nfs4")
    with caplog.at_level(logging.INFO, logger="zeroprobe.engine.watch"):
        async with watching(folder, WatchMode.AUTO) as (engine, watcher):
            await within(lambda: watcher.method is not None, "the watch started")
            assert watcher.method is WatchMode.POLL
            write(folder, "b.yaml", mongo_spec("fs.b"))
            await within(lambda: "fs.b" in engine.contexts, "added while polling")
    assert "a nfs4 file system, where a change made elsewhere raises no event" in caplog.text

    def no_inotify(*args: object) -> None:
        raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(watch_module, "RustNotify", no_inotify)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="zeroprobe.engine.watch"):
        async with watching(folder, WatchMode.NOTIFY) as (engine, watcher):
            await within(lambda: watcher.method is not None, "the watch started")
            assert watcher.method is WatchMode.POLL
            write(folder, "c.yaml", mongo_spec("fs.c"))
            await within(lambda: "fs.c" in engine.contexts, "added while polling")
    assert "change notification for" in caplog.text
    assert "inotify watch limit reached" in caplog.text


async def test_stopping_the_watch_is_quick(tmp_path: Path, watching: Watching) -> None:
    folder = tmp_path / "contexts"
    write(folder, "a.yaml", mongo_spec("stop.a"))
    engine = folder_engine(folder, [])
    watcher = ContextsWatcher(Reloader(engine), 30.0, WatchMode.NOTIFY)
    watcher.start()
    await within(lambda: watcher.method is not None, "the watch started")
    started = time.monotonic()
    await watcher.stop()
    assert time.monotonic() - started < 1.0


def test_the_file_system_comes_from_the_longest_mount_point(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
        "30 22 0:40 / /srv rw shared:1 - tmpfs tmpfs rw\n"
        "31 30 0:41 / /srv/my\\040specs rw - nfs4 server:/specs rw\n"
        "32 30 0:42 / /srv/my rw - cifs //server/x rw\n"
        "33 31 0:43 / /srv/my\\040specs rw - fuse.sshfs host:/x rw\n",
        encoding="utf-8",
    )
    assert file_system_type(Path("/srv/my specs/contexts"), mountinfo) == "fuse.sshfs"
    assert file_system_type(Path("/srv/my/contexts"), mountinfo) == "cifs"
    assert file_system_type(Path("/srv/mine"), mountinfo) == "tmpfs"
    assert file_system_type(Path("/etc"), mountinfo) == "ext4"
    assert file_system_type(Path("/etc"), tmp_path / "missing") is None
    assert [is_remote(k) for k in ("nfs4", "fuse.sshfs", "tmpfs", "ext4", "overlay", None)] == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]


def test_a_look_reads_stat_data_through_symlinks_and_sees_a_configmap_swap(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "contexts"
    kubernetes_volume(folder, {"a.yaml": mongo_spec("k.a")}, "2026_01_01_00_00_00.1")
    first = look(folder)
    assert first.folder_id is not None
    (folder / ".hidden.yaml").write_text("not a spec", encoding="utf-8")
    (folder / "notes.txt").write_text("not a spec either", encoding="utf-8")
    assert look(folder) == first, "hidden files and other extensions do not count"

    # The same name, size and text: only the folder behind ..data is new.
    kubernetes_volume(folder, {"a.yaml": mongo_spec("k.a")}, "2026_01_01_00_00_00.2")

    assert look(folder).digest != first.digest
    assert look(folder, resolve=True).outside == frozenset(), "..data is inside the folder"
    assert look(tmp_path / "missing").folder_id is None
