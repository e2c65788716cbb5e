"""Reloading the context specs without a restart: Engine.apply, the Reloader, POST /-/reload,
the folder watcher (Kubernetes' ..data symlink swap) and SIGHUP on a real `zeroprobe serve`.

Servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import errors as mongo_errors
from pytest_aiohttp import AiohttpClient

from probes.base import ProbeContext
from schemas.context_spec import ConnectedSpec, SpecBase
from tests import test_cli_process, test_scheduler
from tests.test_cli_process import (
    CONNECTION_VAR,
    LABEL,
    Proc,
    Spawn,
    assert_document,
    clean_env,
    free_port,
    request,
    write_spec,
)
from tests.test_cli_process import wait_for as wait_for_answer
from tests.test_http import samples, value_of
from tests.test_scheduler import Recorder, fake_kind, make_engine, quick, spec, wait_for
from zeroprobe.config.loader import ContextFile, load_contexts
from zeroprobe.config.settings import Settings, SettingsError, WatchMode
from zeroprobe.engine.core import Engine, ReloadSummary
from zeroprobe.engine.reload import Reloader, fingerprint
from zeroprobe.simulators.mongo import SimulatedReplicaSet
from zeroprobe.web.app import create_app

# Fixtures of other modules, shared by name: `zeroprobe *args` processes (killed at the end if
# still running) and engines (stopped at the end).
spawn = test_cli_process.spawn
engines = test_scheduler.engines

RELOADED = "zeroprobe_config_last_reload_successful"
RELOADED_AT = "zeroprobe_config_last_reload_success_timestamp_seconds"
# The contract: a change of the folder is applied within 2 s (change notification, or polling
# every second); an added or changed probe then answers after its first run, started at once.
APPLIED_S = 2.0
# Waits for what is not a folder change (a rejected reload's metric, a fixed set).
PICKED_UP_S = 10.0
# Every secondary at 0 ms lag is YELLOW under these bands: a change a PUT shows at once.
YELLOW_AT_ZERO = "thresholds:\n  yellow: 0\n  red: 60000\n"
BROKEN = (
    "service_id: broken.one\n"
    "kind: mongo_replication_lag\n"
    "connection: rs\n"
    "intervall: 5s\n"
    "timeout: soon\n"
)


class LabelledSpec(ConnectedSpec):
    """A fake-kind spec with a connection label, to see clients closed by a reload."""


def context(spec: SpecBase) -> ContextFile:
    return ContextFile(spec=spec, path=f"{spec.service_id}.yaml", line=1)


def labelled(service_id: str, label: str) -> LabelledSpec:
    return LabelledSpec.model_validate(
        {
            "service_id": service_id,
            "kind": "fake",
            "connection": label,
            "interval": "60s",
            "timeout": "45s",
        }
    )


# Engine.apply ---------------------------------------------------------------------------------


async def test_apply_adds_removes_restarts_changed_and_leaves_unchanged_alone(
    engines: list[Engine],
) -> None:
    rec = Recorder()
    ids = ("fake.keep", "fake.gone", "fake.change")
    engine = make_engine([spec(sid, interval="1s") for sid in ids], fake_kind(rec, quick))
    engines.append(engine)
    await engine.start()
    await wait_for(lambda: all(len(engine.store.history(s)) >= 2 for s in ids), timeout_s=4)
    kept_before = engine.store.history("fake.keep")

    summary = await engine.apply(
        [
            engine.contexts["fake.keep"],
            context(spec("fake.change", interval="2s")),
            context(spec("fake.new", interval="1s")),
        ]
    )

    assert summary == ReloadSummary(
        added=("fake.new",),
        removed=("fake.gone",),
        changed=("fake.change",),
        unchanged=("fake.keep",),
    )
    assert str(summary) == "added fake.new; removed fake.gone; changed fake.change; 1 unchanged"
    assert not engine.knows("fake.gone")
    assert not engine.store.knows("fake.gone")
    assert engine.store.history("fake.change") == [], "a changed spec starts afresh"
    assert engine.store.history("fake.keep")[: len(kept_before)] == kept_before
    metrics = engine.metrics.render().decode()
    assert 'service_id="fake.gone"' not in metrics
    assert 'service_id="fake.change"' not in metrics, "series of the old spec are dropped"
    assert value_of(samples(metrics), "zeroprobe_specs_loaded") == 3
    scheduler = engine._scheduler
    assert scheduler is not None
    assert sorted(job.id for job in scheduler.get_jobs()) == [
        "fake.change",
        "fake.keep",
        "fake.new",
    ]

    # Added and changed specs run at once; the unchanged one keeps its 1 s rhythm.
    await wait_for(lambda: engine.store.newest("fake.new") is not None, timeout_s=0.5)
    await wait_for(lambda: engine.store.newest("fake.change") is not None, timeout_s=0.5)
    await asyncio.sleep(2.2)
    keep = [r.collected_at_ms for r in engine.store.history("fake.keep")]
    gaps_ms = [b - a for a, b in itertools.pairwise(keep)]
    assert all(800 < gap < 1300 for gap in gaps_ms), gaps_ms
    assert len(engine.store.history("fake.change")) == 2, "now every 2 s"
    assert all(check.ok for check in engine.process_health())


async def test_apply_cancels_runs_of_removed_specs_and_closes_clients_no_spec_uses(
    engines: list[Engine],
) -> None:
    dead_port = free_port()
    environ = {
        f"ZEROPROBE_CONNECTION_{label.upper()}": (
            f"mongodb://127.0.0.1:{dead_port}/?directConnection=true"
        )
        for label in ("db1", "db2")
    }

    async def holds_a_client(s: SpecBase, ctx: ProbeContext, rec: Recorder) -> None:
        assert isinstance(s, LabelledSpec)
        rec.clients.append(await ctx.mongo.get(s.connection))
        await asyncio.sleep(30)

    rec = Recorder()
    engine = make_engine(
        [labelled("fake.a", "db1"), labelled("fake.b", "db2")],
        fake_kind(rec, holds_a_client),
        environ,
    )
    engines.append(engine)
    await engine.start()
    await wait_for(lambda: rec.active == 2 and len(rec.clients) == 2, timeout_s=2)
    client_a, client_b = (await engine.mongo.get("db1"), await engine.mongo.get("db2"))

    started = time.monotonic()
    summary = await engine.apply([engine.contexts["fake.b"]])

    assert time.monotonic() - started < 1.0
    assert summary.removed == ("fake.a",)
    assert rec.cancelled == 1, "the removed spec's run was cancelled"
    assert rec.active == 1, "the unchanged spec's run goes on"
    assert engine.store.newest("fake.a") is None
    assert engine.mongo.open_labels == ["db2"]
    with pytest.raises(mongo_errors.InvalidOperation):
        await client_a.admin.command("ping")
    assert await engine.mongo.get("db2") is client_b, "a client still in use stays open"


async def test_ready_instance_stays_ready_when_a_reload_adds_probes(
    engines: list[Engine],
) -> None:
    async def slow(s: SpecBase, ctx: ProbeContext, rec: Recorder) -> None:
        await asyncio.sleep(0.5)

    engine = make_engine([spec("fake.a", interval="5s", timeout="2s")], fake_kind(Recorder(), slow))
    engines.append(engine)
    await engine.start()
    await wait_for(lambda: all(c.ok for c in engine.readiness()), timeout_s=2)

    await engine.apply([*engine.contexts.values(), context(spec("fake.b"))])

    assert engine.store.newest("fake.b") is None
    assert all(c.ok for c in engine.readiness()), engine.readiness()


# The Reloader: a whole folder, valid or not ---------------------------------------------------


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def mongo_spec(service_id: str, extra: str = "") -> str:
    return (
        f"service_id: {service_id}\n"
        "kind: mongo_replication_lag\n"
        "connection: rs\n"
        "interval: 30s\n"
        "timeout: 5s\n" + extra
    )


def folder_engine(folder: Path, engines: list[Engine]) -> Engine:
    """An engine of the specs in `folder`, not started: nothing probes."""
    environ = {"ZEROPROBE_CONNECTION_RS": "mongodb://127.0.0.1:1/?directConnection=true"}
    report = load_contexts(folder, environ)
    assert report.ok, report.problems
    engine = Engine(report.specs, Settings(contexts=str(folder)), environ)
    engines.append(engine)
    return engine


async def test_invalid_file_keeps_the_old_set_logs_every_error_and_sets_the_metric(
    tmp_path: Path, engines: list[Engine], caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "contexts"
    write(folder, "a.yaml", mongo_spec("reload.a"))
    engine = folder_engine(folder, engines)
    reloader = Reloader(engine)
    loaded_at = value_of(samples(engine.metrics.render().decode()), RELOADED_AT)
    assert value_of(samples(engine.metrics.render().decode()), RELOADED) == 1
    write(folder, "b.yaml", mongo_spec("reload.b"))
    broken = write(folder, "broken.yaml", BROKEN)

    with caplog.at_level(logging.INFO):
        outcome = await reloader.reload("test")

    assert not outcome.ok
    problems = [str(p) for p in outcome.errors]
    assert len(problems) == 2, problems
    # (The list of allowed fields that follows is the kind's: tests/test_loader.py checks it.)
    assert problems[0].startswith(
        f"{broken}:4: intervall: unknown field, did you mean 'interval'? (allowed: "
    )
    assert problems[1] == (
        f"{broken}:5: timeout: expected a duration like '30s', '2m', '1m30s' or '500ms', got 'soon'"
    )
    assert list(engine.contexts) == ["reload.a"], "the old set runs on"
    logged = caplog.text
    for problem in outcome.errors:
        assert str(problem) in logged
    assert "rejected" in logged
    parsed = samples(engine.metrics.render().decode())
    assert value_of(parsed, RELOADED) == 0
    assert value_of(parsed, RELOADED_AT) == loaded_at
    body = outcome.as_json()
    assert body["status"] == 422
    assert body["errors"] == [str(p) for p in outcome.errors]
    assert body["probing"] == ["reload.a"]

    broken.unlink()
    outcome = await reloader.reload("test")

    assert outcome.ok
    assert outcome.summary == ReloadSummary(added=("reload.b",), unchanged=("reload.a",))
    assert sorted(engine.contexts) == ["reload.a", "reload.b"]
    parsed = samples(engine.metrics.render().decode())
    assert value_of(parsed, RELOADED) == 1
    assert value_of(parsed, RELOADED_AT) >= loaded_at


async def test_a_description_or_runbook_edit_keeps_the_probe_and_takes_the_new_text(
    tmp_path: Path, engines: list[Engine]
) -> None:
    folder = tmp_path / "contexts"
    write(folder, "a.md", f"---\n{mongo_spec('reload.md')}---\n# Runbook v1\n")
    engine = folder_engine(folder, engines)
    spec_v2 = mongo_spec("reload.md", "description: now with a description\n")
    write(folder, "a.md", f"---\n{spec_v2}---\n# Runbook v2\n")

    outcome = await Reloader(engine).reload("test")

    assert outcome.summary == ReloadSummary(unchanged=("reload.md",))
    assert engine.contexts["reload.md"].body == "# Runbook v2"
    assert engine.contexts["reload.md"].spec.description == "now with a description"


@pytest.mark.parametrize(
    ("value", "poll_s"), [("0", 0.0), ("off", 0.0), ("500ms", 0.5), ("2s", 2.0), ("", 1.0)]
)
def test_contexts_poll_comes_from_the_environment(value: str, poll_s: float) -> None:
    settings = Settings.from_environ({"ZEROPROBE_CONTEXTS_POLL": value})
    assert settings.contexts_poll_s == poll_s


def test_an_unusable_contexts_poll_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="ZEROPROBE_CONTEXTS_POLL"):
        Settings.from_environ({"ZEROPROBE_CONTEXTS_POLL": "soon"})


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("", WatchMode.AUTO),
        ("auto", WatchMode.AUTO),
        ("notify", WatchMode.NOTIFY),
        ("POLL ", WatchMode.POLL),
    ],
)
def test_contexts_watch_comes_from_the_environment(value: str, mode: WatchMode) -> None:
    assert Settings.from_environ({"ZEROPROBE_CONTEXTS_WATCH": value}).contexts_watch is mode


def test_an_unknown_contexts_watch_is_a_settings_error() -> None:
    with pytest.raises(
        SettingsError, match="ZEROPROBE_CONTEXTS_WATCH: expected auto, notify or poll"
    ):
        Settings.from_environ({"ZEROPROBE_CONTEXTS_WATCH": "inotify"})


def kubernetes_volume(folder: Path, files: dict[str, str], stamp: str) -> None:
    """Lay out `files` the way the kubelet updates a ConfigMap volume (AtomicWriter): a new
    hidden timestamped folder, `..data` swapped to it by a rename, visible symlinks through
    `..data` added for new names and removed for gone ones, the old folder removed."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "..data"
    old = data.resolve() if data.is_symlink() else None
    target = folder / f"..{stamp}"
    target.mkdir()
    for name, text in files.items():
        (target / name).write_text(text, encoding="utf-8")
    tmp_link = folder / "..data_tmp"
    tmp_link.symlink_to(target.name)
    os.replace(tmp_link, data)
    for name in files:
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(f"..data/{name}")
    for visible in folder.iterdir():
        if not visible.name.startswith("..") and visible.name not in files:
            visible.unlink()
    if old is not None:
        for leftover in old.iterdir():
            leftover.unlink()
        old.rmdir()


def test_fingerprint_follows_the_kubernetes_symlink_swap(tmp_path: Path) -> None:
    folder = tmp_path / "contexts"
    kubernetes_volume(folder, {"a.yaml": mongo_spec("k.a")}, "2026_01_01_00_00_00.1")
    first = fingerprint(folder)
    (folder / ".hidden.yaml").write_text("not a spec", encoding="utf-8")
    (folder / "notes.txt").write_text("not a spec either", encoding="utf-8")
    assert fingerprint(folder) == first, "hidden files and other extensions do not count"

    # Same names, same sizes: only the content behind ..data changes.
    kubernetes_volume(folder, {"a.yaml": mongo_spec("k.b")}, "2026_01_01_00_00_00.2")

    assert fingerprint(folder) != first
    assert fingerprint(tmp_path / "missing") != fingerprint(tmp_path)


# POST /-/reload -------------------------------------------------------------------------------


async def test_post_reload_answers_what_changed_or_every_error(
    aiohttp_client: AiohttpClient, tmp_path: Path, engines: list[Engine]
) -> None:
    folder = tmp_path / "contexts"
    write(folder, "a.yaml", mongo_spec("reload.a"))
    write(folder, "b.yaml", mongo_spec("reload.b"))
    engine = folder_engine(folder, engines)
    client = await aiohttp_client(create_app(engine, start_engine=False))
    (folder / "b.yaml").unlink()
    write(folder, "c.yaml", mongo_spec("reload.c"))
    broken = write(folder, "broken.yaml", BROKEN)

    rejected = await client.post("/-/reload")

    assert rejected.status == 422
    assert rejected.content_type == "application/json"
    body = await rejected.json()
    assert body["status"] == 422
    assert len(body["errors"]) == 2
    assert all(e.startswith(f"{broken}:") for e in body["errors"]), body
    assert body["probing"] == ["reload.a", "reload.b"]
    assert (await client.put("/reload.b")).status == 503, "the old set is still served"
    assert (await client.put("/reload.c")).status == 404

    broken.unlink()
    applied = await client.post("/-/reload", data=b"ignored")

    assert applied.status == 200
    assert await applied.json() == {
        "status": "ok",
        "added": ["reload.c"],
        "removed": ["reload.b"],
        "changed": [],
        "unchanged": ["reload.a"],
        "warnings": [],
    }
    assert (await client.put("/reload.b")).status == 404
    assert (await client.put("/reload.c")).status == 503
    metrics = await (await client.get("/metrics")).text()
    assert value_of(samples(metrics), RELOADED) == 1
    wrong_method = await client.get("/-/reload")
    assert wrong_method.status == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert (await wrong_method.json())["status"] == 405


# A real `zeroprobe serve` ---------------------------------------------------------------------


class Poller:
    """PUTs one path over and over from a thread and keeps every status it got."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.statuses: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 50  # bounded, whatever the test does
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                status, _, _ = request(self.port, "PUT", self.path)
            except OSError as exc:
                self.statuses.append(type(exc).__name__)
            else:
                self.statuses.append(status)
            time.sleep(0.01)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def eventually(
    proc: Proc, condition: Callable[[], bool], what: str, timeout_s: float = PICKED_UP_S
) -> float:
    """Poll `condition` until true; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if proc.popen.poll() is not None:
            pytest.fail(f"exited with {proc.popen.returncode}:\n{proc.stderr}")
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"not within {timeout_s}s: {what}\n{proc.stderr}")
        time.sleep(0.1)
    return time.monotonic() - started


def status_of(port: int, service_id: str) -> tuple[int, str | None]:
    """The HTTP status of PUT /<id> and, on 200, the document's colour."""
    status, _, body = request(port, "PUT", f"/{service_id}")
    return status, (assert_document(body, service_id)["status"] if status == 200 else None)


def metric(port: int, name: str) -> float:
    _, _, body = request(port, "GET", "/metrics")
    return value_of(samples(body.decode()), name)


def serve(spawn: Spawn, contexts: Path, rs: SimulatedReplicaSet, **env: str) -> tuple[Proc, int]:
    port = free_port()
    proc = spawn(
        "serve",
        "--contexts",
        str(contexts),
        "--port",
        str(port),
        env=clean_env(**{CONNECTION_VAR: rs.uri}, **env),
    )
    return proc, port


def test_serve_applies_folder_changes_with_no_gap_for_unchanged_probes(
    spawn: Spawn, tmp_path: Path, replica_set: SimulatedReplicaSet
) -> None:
    contexts = tmp_path / "contexts"
    for sid in ("p.keep", "p.gone", "p.change"):
        write_spec(contexts, service_id=sid)
    proc, port = serve(spawn, contexts, replica_set)
    for sid in ("p.keep", "p.gone", "p.change"):
        wait_for_answer(proc, port, "PUT", f"/{sid}", timeout_s=15)
    assert status_of(port, "p.change") == (200, "GREEN")

    with Poller(port, "/p.keep") as poller:
        write_spec(contexts, service_id="p.new")
        eventually(
            proc, lambda: status_of(port, "p.new") == (200, "GREEN"), "p.new served", APPLIED_S
        )

        changed = contexts / "p.change.yaml"
        changed.write_text(changed.read_text(encoding="utf-8") + YELLOW_AT_ZERO, "utf-8")
        eventually(
            proc,
            lambda: status_of(port, "p.change")[1] == "YELLOW",
            "p.change changed",
            APPLIED_S,
        )

        (contexts / "p.gone.yaml").unlink()
        eventually(proc, lambda: status_of(port, "p.gone")[0] == 404, "p.gone removed", APPLIED_S)
        for path in ("/metrics", "/liveness", "/readyz", "/"):
            assert b"p.gone" not in request(port, "GET", path)[2], path

        # A broken file among valid changes: the whole new set is refused.
        write_spec(contexts, service_id="p.later")
        (contexts / "p.broken.yaml").write_text(BROKEN, encoding="utf-8")
        eventually(proc, lambda: metric(port, RELOADED) == 0, "the reload was rejected")
        time.sleep(1.5)
        assert status_of(port, "p.later")[0] == 404, "nothing of the refused set applies"
        assert status_of(port, "p.new") == (200, "GREEN")
        assert status_of(port, "p.gone")[0] == 404
        assert "p.broken.yaml:4: intervall: unknown field" in proc.stderr
        assert "p.broken.yaml:5: timeout: expected a duration" in proc.stderr

        (contexts / "p.broken.yaml").unlink()
        eventually(proc, lambda: status_of(port, "p.later")[0] == 200, "fixed set applied")
        assert metric(port, RELOADED) == 1

    assert len(poller.statuses) > 100, "the poller kept asking"
    assert set(poller.statuses) == {200}, [s for s in poller.statuses if s != 200][:5]
    code, _ = proc.stop()
    assert code == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("watch", "how"),
    [("auto", "change notification (inotify)"), ("poll", "polling its listing and stat data")],
)
def test_serve_picks_up_a_kubernetes_configmap_update_within_2s(
    spawn: Spawn, tmp_path: Path, replica_set: SimulatedReplicaSet, watch: str, how: str
) -> None:
    contexts = tmp_path / "contexts"
    write_spec(tmp_path / "src", service_id="k8s.a", connection=LABEL)
    a_yaml = (tmp_path / "src" / "k8s.a.yaml").read_text(encoding="utf-8")
    write_spec(tmp_path / "src", service_id="k8s.gone", connection=LABEL)
    gone_yaml = (tmp_path / "src" / "k8s.gone.yaml").read_text(encoding="utf-8")
    kubernetes_volume(
        contexts, {"k8s.a.yaml": a_yaml, "k8s.gone.yaml": gone_yaml}, "2026_11_22_10_00_00.1"
    )
    proc, port = serve(spawn, contexts, replica_set, ZEROPROBE_CONTEXTS_WATCH=watch)
    wait_for_answer(proc, port, "PUT", "/k8s.a", timeout_s=15)
    wait_for_answer(proc, port, "PUT", "/k8s.gone", timeout_s=15)

    write_spec(tmp_path / "src", service_id="k8s.b", connection=LABEL)
    b_yaml = (tmp_path / "src" / "k8s.b.yaml").read_text(encoding="utf-8")
    kubernetes_volume(
        contexts,
        {"k8s.a.yaml": a_yaml + YELLOW_AT_ZERO, "k8s.b.yaml": b_yaml},
        "2026_11_22_10_05_00.2",
    )
    # Applied: the removed spec is unknown, the added one known, the changed one restarted
    # (503 until its first run, which may come a few seconds later: first runs of several
    # specs are spread).
    took_s = eventually(
        proc,
        lambda: (
            status_of(port, "k8s.gone")[0] == 404
            and status_of(port, "k8s.b")[0] in (200, 503)
            and status_of(port, "k8s.a") != (200, "GREEN")
        ),
        "the swapped ConfigMap applied",
        APPLIED_S,
    )
    eventually(
        proc,
        lambda: status_of(port, "k8s.b")[0] == 200 and status_of(port, "k8s.a")[1] == "YELLOW",
        "the new set served",
    )

    assert took_s < APPLIED_S
    assert f"watching {contexts} for changes: {how}" in proc.stderr
    code, _ = proc.stop()
    assert code == 0, proc.stderr


def test_sighup_and_post_reload_a_serve_that_does_not_poll(
    spawn: Spawn, tmp_path: Path, replica_set: SimulatedReplicaSet
) -> None:
    contexts = tmp_path / "contexts"
    write_spec(contexts, service_id="h.a")
    proc, port = serve(spawn, contexts, replica_set, ZEROPROBE_CONTEXTS_POLL="0")
    wait_for_answer(proc, port, "PUT", "/h.a", timeout_s=15)

    write_spec(contexts, service_id="h.b")
    time.sleep(2.5)  # longer than a watcher would take: none runs
    assert status_of(port, "h.b")[0] == 404
    proc.popen.send_signal(signal.SIGHUP)
    eventually(proc, lambda: status_of(port, "h.b") == (200, "GREEN"), "SIGHUP applied", 5)
    assert "reload (SIGHUP): added h.b; 1 unchanged" in proc.stderr

    write_spec(contexts, service_id="h.c")
    broken = contexts / "h.broken.yaml"
    broken.write_text(BROKEN, encoding="utf-8")
    status, _, body = request(port, "POST", "/-/reload")
    assert status == 422
    answer: dict[str, Any] = json.loads(body)
    assert [e.split(": ")[0] for e in answer["errors"]] == [f"{broken}:4", f"{broken}:5"]
    assert answer["probing"] == ["h.a", "h.b"]
    assert status_of(port, "h.c")[0] == 404

    broken.unlink()
    status, _, body = request(port, "POST", "/-/reload")
    assert status == 200
    assert json.loads(body)["added"] == ["h.c"]
    wait_for_answer(proc, port, "PUT", "/h.c", timeout_s=5)
    code, _ = proc.stop()
    assert code == 0, proc.stderr
    assert "Traceback" not in proc.stderr
