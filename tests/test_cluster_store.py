"""The store's side of warm start and reshard grace, and an engine that schedules only the
ids its shard owns, through reloads too."""

from __future__ import annotations

import json

import pytest

from schemas.grading import Grade, Line
from tests.status_page_support import Script, scripted
from zeroprobe.config.settings import Settings
from zeroprobe.config.topology import Topology
from zeroprobe.engine.core import Engine
from zeroprobe.engine.store import Result, ResultStore

T0_MS = 1_700_000_000_000


def result(service_id: str, at_ms: int, grade: Grade = Grade.GREEN, text: str = "") -> Result:
    return Result.build(
        service_id=service_id,
        kind="scripted",
        lines=[Line(text or f"- lag {at_ms % 997}ms", grade), Line("- arbiter", None)],
        collected_at_ms=at_ms,
        duration_s=0.012,
        outcome="success" if grade is Grade.GREEN else "error",
        reached_target=True,
    )


def filled(ids: list[str], runs: int) -> ResultStore:
    store = ResultStore()
    store.track(ids)
    for n in range(runs):
        for sid in ids:
            grade = (Grade.GREEN, Grade.YELLOW, Grade.RED)[n % 3]
            store.put(result(sid, T0_MS + n * 60_000, grade))
    return store


def over_the_wire(store: ResultStore, wanted: object = None) -> list[dict[str, object]]:
    items = store.snapshots(T0_MS, lambda sid: wanted is None or sid == wanted)
    loaded: list[dict[str, object]] = json.loads(json.dumps(items))
    return loaded


def test_a_snapshot_restores_the_newest_result_and_history_exactly() -> None:
    ids = ["a.one", "a.two"]
    source = filled(ids, 70)  # more runs than the history keeps
    target = ResultStore()
    target.track(ids)
    for item in over_the_wire(source):
        assert target.restore(item)
    for sid in ids:
        assert target.newest(sid) == source.newest(sid)
        assert target.newest(sid).document == source.newest(sid).document  # type: ignore[union-attr]
        assert target.history(sid) == source.history(sid)
        assert len(target.history(sid)) == 60
    # Restored runs are not this pod's runs: no outcome counts, but the status is exported.
    ((newest, counts, _),) = [s for s in target.series() if s[0].service_id == "a.one"]
    assert newest.grade is source.newest("a.one").grade  # type: ignore[union-attr]
    assert counts == (0, 0, 0)
    # The next own run continues the history.
    target.put(result("a.one", T0_MS + 71 * 60_000))
    assert target.history("a.one")[-1].collected_at_ms == T0_MS + 71 * 60_000
    assert len(target.history("a.one")) == 60


def test_an_own_result_is_never_replaced_and_untracked_ids_are_ignored() -> None:
    source = filled(["a.one"], 3)
    target = ResultStore()
    target.track(["a.one"])
    mine = result("a.one", T0_MS + 10 * 60_000, Grade.RED)
    target.put(mine)
    (item,) = over_the_wire(source)
    assert not target.restore(item)
    assert target.newest("a.one") is mine
    other = ResultStore()
    other.track(["b.other"])
    assert not other.restore(item)


def test_kept_results_serve_until_their_grace_window_ends() -> None:
    source = filled(["a.one"], 3)
    target = ResultStore()
    target.track(["a.one"])
    (item,) = over_the_wire(source)
    assert target.restore(item, grace_until_ms=T0_MS + 1000)
    assert target.newest("a.one") is None  # never served by the fast path
    kept = target.grace_newest("a.one", T0_MS + 999)
    assert kept is not None and kept.document == source.newest("a.one").document  # type: ignore[union-attr]
    assert len(target.snapshots(T0_MS, lambda sid: True)) == 1  # passed on by warm start
    assert target.grace_newest("a.one", T0_MS + 1001) is None
    assert target.snapshots(T0_MS + 2000, lambda sid: True) == []
    # A removed spec takes its kept result with it.
    assert target.restore(item, grace_until_ms=T0_MS + 10_000)
    target.track([])
    assert target.grace_newest("a.one", T0_MS) is None


@pytest.mark.parametrize(
    "spoil",
    [
        lambda item: item.update(runs="!!notbase64"),
        lambda item: item.update(runs=""),
        lambda item: item.update(bodies=[]),
        lambda item: item["newest"].update(grade="PURPLE"),
        lambda item: item["newest"].update(outcome="maybe"),
        lambda item: item["newest"].update(line_grades="GGGG"),
        lambda item: item.pop("wide"),
    ],
)
def test_a_spoiled_snapshot_is_refused(spoil: object) -> None:
    source = filled(["a.one"], 3)
    (item,) = over_the_wire(source)
    spoil(item)  # type: ignore[operator]
    target = ResultStore()
    target.track(["a.one"])
    with pytest.raises((ValueError, KeyError, TypeError)):
        target.restore(item)
    assert target.newest("a.one") is None


async def test_an_engine_schedules_only_its_shards_ids_and_a_reload_re_evaluates() -> None:
    ids = [f"shard.probe.{n}" for n in range(20)]
    topology = Topology(shards=2, replicas=1, index=1, peers=("http://a", "http://b"))
    script = Script()
    for sid in ids:
        script.lines[sid] = [Line("- fine", Grade.GREEN)]
    settings = Settings(topology=topology, first_run_spread_s=0.0)
    engine = Engine([scripted(sid) for sid in ids[:10]], settings, {}, kinds=script.kinds())
    await engine.start()
    try:
        scheduler = engine._scheduler
        assert scheduler is not None
        jobs = {job.id for job in scheduler.get_jobs()}
        assert jobs == {sid for sid in ids[:10] if topology.owner(sid) == 1}
        assert jobs and jobs != set(ids[:10])
        await engine.apply([scripted(sid) for sid in ids])
        jobs = {job.id for job in scheduler.get_jobs()}
        assert jobs == {sid for sid in ids if topology.owner(sid) == 1}
        # Readiness waits for the owned ids only; /liveness here covers them only.
        for sid in jobs:
            await engine.run_once(sid)
        assert all(check.ok for check in engine.readiness())
        assert {check.name for check in engine.liveness()} == jobs
    finally:
        await engine.stop()
