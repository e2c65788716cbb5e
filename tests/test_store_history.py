"""The compact history of the result store: what goes in comes out, whatever the texts."""

from __future__ import annotations

import random

import pytest

from schemas.grading import Grade, Line
from zeroprobe.engine.document import render_document, render_document_slowly
from zeroprobe.engine.store import HISTORY_SIZE, OUTCOMES, Result, ResultStore

DAY_MS = 86_400_000


def result(
    text: str, at_ms: int, *, grade: Grade = Grade.GREEN, outcome: str = "success"
) -> Result:
    lines = [Line(t, grade) for t in text.split("\n")] if text else []
    return Result.build(
        service_id="svc",
        kind="k",
        lines=lines,
        collected_at_ms=at_ms,
        duration_s=0.001234,
        outcome=outcome,
        reached_target=outcome == "success",
        grade=grade,
    )


def runs_of(store: ResultStore) -> list[tuple[int, str, str, str, float]]:
    return [
        (r.collected_at_ms, r.grade.value, r.outcome, r.action_body, r.duration_s)
        for r in store.history("svc")
    ]


def expected(results: list[Result]) -> list[tuple[int, str, str, str, float]]:
    return [
        (r.collected_at_ms, r.grade.value, r.outcome, r.action_body, round(r.duration_s, 6))
        for r in results[-HISTORY_SIZE:]
    ]


def lag_text(rng: random.Random) -> str:
    shape = rng.randrange(6)
    lag = rng.choice([0, 1, 9, 10, 250, 1_234_567, 30000])
    if shape == 0:
        return f"- Secondary 10.0.0.2:27018 replication lag {lag}ms\n- Primary 10.0.0.1:27017"
    if shape == 1:
        return f"- Member 10.0.0.3:27019 in state RECOVERING\n- lag {lag}ms, {lag + 1} ops"
    if shape == 2:
        return ""
    if shape == 3:
        return f"- ünïcödé ٣ digits {lag} and full-width ７{lag}"
    if shape == 4:
        return f"{lag}"
    return "- no numbers at all"


@pytest.mark.parametrize("seed", range(20))
def test_history_returns_exactly_what_was_stored(seed: int) -> None:
    rng = random.Random(seed)
    store = ResultStore()
    store.track(["svc"])
    results: list[Result] = []
    at_ms = 1_763_776_800_000
    for _ in range(rng.randrange(1, 200)):
        at_ms += rng.choice([1, 1000, 60_000, -5_000])  # a clock may step back
        grade = rng.choice(list(Grade))
        outcome = rng.choice(OUTCOMES)
        text = lag_text(rng) if rng.random() < 0.7 else (results[-1].action_body if results else "")
        results.append(result(text, at_ms, grade=grade, outcome=outcome))
        store.put(results[-1])
        assert runs_of(store) == expected(results)
    assert store.newest("svc") is results[-1]


def test_runs_spread_over_months_keep_their_times() -> None:
    store = ResultStore()
    store.track(["svc"])
    results = [result("- x 1", 1_000_000 + n * 10 * DAY_MS) for n in range(70)]
    for r in results:
        store.put(r)
    assert runs_of(store) == expected(results)


def test_an_unchanged_text_is_kept_once_and_shared_with_the_newest_result() -> None:
    store = ResultStore()
    store.track(["svc"])
    first = result("- Secondary b lag 0ms", 1)
    second = result("- Secondary b lag 0ms", 2)
    store.put(first)
    store.put(second)
    newest = store.newest("svc")
    assert newest is second
    assert newest.action_body is first.action_body
    assert [r.action_body for r in store.history("svc")] == ["- Secondary b lag 0ms"] * 2


def test_counts_by_outcome_and_last_success_feed_the_metrics() -> None:
    store = ResultStore()
    store.track(["svc"])
    for n, outcome in enumerate(["success", "error", "timeout", "timeout", "success", "error"]):
        store.put(result("- x", 1000 + n, outcome=outcome))
    ((newest, counts, last_success_ms),) = list(store.series())
    assert newest.outcome == "error"
    assert counts == (2, 2, 2)
    assert last_success_ms == 1004
    store.reset(["svc"])
    assert list(store.series()) == []


@pytest.mark.parametrize(
    ("service_id", "body"),
    [
        ("svc", ""),
        ("orders.mongo-lag_1", "- Secondary a:1 lag 10ms\n- Primary b:2"),
        ("x", '- quotes " and \\ backslash, tab\t, NUL \x00, unit sep \x1f, DEL \x7f'),
        ("y", "- ünïcödé ✓ emoji 🚀, line sep \u2028 para sep \u2029, lone surrogate-free"),
    ],
)
@pytest.mark.parametrize("grade", list(Grade))
def test_the_fast_document_is_byte_for_byte_the_json_dumps_one(
    service_id: str, body: str, grade: Grade
) -> None:
    for timestamp_ms in (0, 1_763_776_800_123):
        assert render_document(service_id, grade, timestamp_ms, body) == render_document_slowly(
            service_id, grade, timestamp_ms, body
        )
