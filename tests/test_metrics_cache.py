"""The kept-rendered /metrics (engine/exposition.py): the same samples as a fresh render by
prometheus-client of the same facts, after puts, changes, resets and forgets, in both formats
and through gzip; and the pieces it is made of (CRC combining, content negotiation)."""

from __future__ import annotations

import gzip
import random
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from prometheus_client import Counter
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families
from prometheus_client.utils import floatToGoString

from schemas.grading import Grade, Line
from zeroprobe.config.kinds import installed_kinds
from zeroprobe.engine.exposition import MAX_GROUPS, Format, go_float, go_int
from zeroprobe.engine.gzip_segments import deflate, gzip_pieces
from zeroprobe.engine.metrics import Metrics
from zeroprobe.engine.store import Result, ResultStore
from zeroprobe.web.scrape import accepts_gzip, negotiate_format

LAG = "zeroprobe_mongo_replication_lag_seconds"
WINDOW = "zeroprobe_mongo_oplog_window_seconds"
HEADROOM = "zeroprobe_mongo_oplog_headroom_seconds"
RESPONSE_TIME = "zeroprobe_http_endpoint_response_time_seconds"
SECRET = "s3cr3t-token"

#: Prometheus 2.42's Accept header, and that of Prometheus 3 (scrape_protocols default).
PROMETHEUS_2_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;"
    "escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)

Samples = list[tuple[str, tuple[tuple[str, str], ...], float]]


def samples(body: bytes, fmt: Format) -> Samples:
    """Every sample, order-independent: the formats fix the order within a family only."""
    parse: Callable[[str], Iterable[Any]] = (
        openmetrics_families if fmt == "openmetrics" else text_families
    )
    return sorted(
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in parse(body.decode())
        for s in family.samples
    )


def headers(body: bytes) -> list[str]:
    """The HELP/TYPE/UNIT lines, sorted (each family exactly once: a parser merges repeats)."""
    return sorted(line for line in body.decode().splitlines() if line.startswith("# "))


def result(
    service_id: str,
    kind: str,
    *,
    grade: Grade = Grade.GREEN,
    outcome: str = "success",
    duration_s: float = 0.0123,
    at_ms: int = 1_700_000_000_000,
) -> Result:
    return Result.build(
        service_id=service_id,
        kind=kind,
        lines=[Line("- a line", grade)],
        collected_at_ms=at_ms,
        duration_s=duration_s,
        outcome=outcome,
        reached_target=outcome == "success",
    )


def redact(text: str) -> str:
    return text.replace(SECRET, "[REDACTED]")


@pytest.fixture
def store_and_metrics() -> tuple[ResultStore, Metrics]:
    store = ResultStore()
    metrics = Metrics(redact, installed_kinds().kinds.values())
    metrics.publish_results(store)
    return store, metrics


def assert_same(metrics: Metrics) -> None:
    """The cached rendering has the samples and families of a fresh full one, in both formats,
    plain and gzip; the classic text keeps every family contiguous (the parser would
    otherwise see a family twice)."""
    for fmt in ("text", "openmetrics"):
        fresh = metrics.render_uncached(fmt)
        cached = metrics.render(fmt)
        assert samples(cached, fmt) == samples(fresh, fmt)
        assert headers(cached) == headers(fresh)
        names = [f.name for f in text_families(cached.decode())] if fmt == "text" else []
        assert len(names) == len(set(names))
        scrape = metrics.scrape(fmt, compressed=True)
        zipped = b"".join(scrape.build())
        scrape.finish()
        assert gzip.decompress(zipped) == cached
        if fmt == "openmetrics":
            assert cached.endswith(b"\n# EOF\n") and cached.count(b"# EOF") == 1


def test_cached_render_matches_a_fresh_one_through_puts_changes_and_forgets(
    store_and_metrics: tuple[ResultStore, Metrics],
) -> None:
    store, metrics = store_and_metrics
    ids = {
        "db.lag": "mongo_replication_lag",
        "api.errors": "prometheus_query",
        "am.critical": "alertmanager_alerts",
        "shop.web": "http_endpoint",
        'odd"id\\x': "prometheus_query",  # not a valid service id, but labels are escaped
    }
    store.track(ids)
    assert_same(metrics)  # nothing yet: headers only

    for n, (service_id, kind) in enumerate(ids.items()):
        store.put(result(service_id, kind, duration_s=0.001 * (n + 1)))
    metrics.set_kind_series(LAG, "db.lag", {"db1:27017": 0.0, "db2:27017": 1.5, "db3:27017": 0.2})
    metrics.set_kind_series(WINDOW, "db.lag", {"rs0": 86400.0})
    metrics.set_kind_series(HEADROOM, "db.lag", {"db2:27017": 86398.5, "db3:27017": 86399.8})
    metrics.set_kind_series(RESPONSE_TIME, "shop.web", {"checkout": 0.08, 'say "hi"\n': 0.1})
    assert_same(metrics)

    # Changes: a colour, an error and a timeout, a member gone and one new, a secret in a
    # member name, big counters and values Go prints with an exponent.
    store.put(result("db.lag", "mongo_replication_lag", grade=Grade.RED, duration_s=2.5))
    store.put(result("api.errors", "prometheus_query", grade=Grade.RED, outcome="error"))
    store.put(result("am.critical", "alertmanager_alerts", grade=Grade.RED, outcome="timeout"))
    store.put(result("shop.web", "http_endpoint", duration_s=12345678.9))
    metrics.set_kind_series(
        LAG, "db.lag", {"db1:27017": 0.0, "db3:27017": 31.0, f"{SECRET}@db4:27017": 2.0}
    )
    metrics.set_kind_series(RESPONSE_TIME, "shop.web", {"checkout": 3.2})
    assert_same(metrics)
    body = metrics.render()
    assert SECRET.encode() not in body and b"[REDACTED]@db4:27017" in body
    assert b'member="db2:27017"' not in body.split(b"# HELP " + HEADROOM.encode())[0]

    # A probe that cannot measure drops its kind's series (export_kind with no observation).
    mongo = installed_kinds().kinds["mongo_replication_lag"]
    metrics.export_kind("db.lag", mongo, None, None)
    assert_same(metrics)
    assert LAG.encode() + b"{" not in metrics.render()

    # A changed spec (reset: no result yet) and a removed one (forgotten).
    metrics.set_kind_series(LAG, "db.lag", {"db1:27017": 0.5})
    assert_same(metrics)
    store.reset(["api.errors"])
    store.track([sid for sid in ids if sid != "db.lag"])
    metrics.forget("db.lag", mongo)
    assert_same(metrics)
    body = metrics.render()
    assert b'service_id="db.lag"' not in body and b'service_id="api.errors"' not in body
    assert b'service_id="am.critical"' in body


def test_a_change_while_a_scrape_is_built_is_in_the_next_one(
    store_and_metrics: tuple[ResultStore, Metrics],
) -> None:
    store, metrics = store_and_metrics
    store.track(["a", "b"])
    store.put(result("a", "prometheus_query"))
    store.put(result("b", "prometheus_query"))
    metrics.render()
    store.put(result("a", "prometheus_query", grade=Grade.RED))
    for _ in metrics.refresh():
        pass
    scrape = metrics.scrape("text", compressed=True)
    store.put(result("b", "prometheus_query", grade=Grade.YELLOW))  # after the scrape began
    for _ in metrics.refresh():
        pass
    scrape.build()
    scrape.finish()  # must not keep its older blocks over the newer change

    assert_same(metrics)
    statuses = {
        s[1]: s[2] for s in samples(metrics.render(), "text") if s[0] == "zeroprobe_probe_status"
    }
    assert sorted(statuses.values()) == [1.0, 2.0]


def test_registry_metrics_registered_later_are_rendered(
    store_and_metrics: tuple[ResultStore, Metrics],
) -> None:
    _, metrics = store_and_metrics
    metrics.render()
    counter = Counter("zeroprobe_test_things", "Things.", ["outcome"], registry=metrics.registry)
    counter.labels("ok").inc(3)
    assert_same(metrics)
    assert b'zeroprobe_test_things_total{outcome="ok"} 3.0' in metrics.render()


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 1.0, 0.1, 1e-7, 123456.7, 1234567.0, 1e6, 1.5e21, -2e9, float("inf"), -1e308],
)
def test_go_float_is_prometheus_clients(value: float) -> None:
    assert go_float(value) == floatToGoString(value)  # type: ignore[no-untyped-call]
    assert go_float(float("-inf")) == "-Inf" and go_float(float("nan")) == "NaN"


@pytest.mark.parametrize("count", [0, 1, 60, 999_999, 1_000_000, 1_234_567, 10**17])
def test_go_int_is_prometheus_clients(count: int) -> None:
    assert go_int(count) == floatToGoString(count)  # type: ignore[no-untyped-call]


def test_gzip_of_segments_is_one_valid_member() -> None:
    texts = [b"", b"a", b"# HELP x y\n" * 1000, bytes(range(256)) * 300, b"tail\n"]
    segments = [deflate([text[:5], text[5:]]) for text in texts]

    body = b"".join(gzip_pieces(segments))

    assert gzip.decompress(body) == b"".join(texts)
    whole = zlib.decompressobj(wbits=31)  # one member: a decoder that stops after one
    assert whole.decompress(body) == b"".join(texts) and whole.eof and not whole.unused_data


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (PROMETHEUS_2_ACCEPT, "openmetrics"),
        (PROMETHEUS_3_ACCEPT, "openmetrics"),
        ("application/openmetrics-text; version=1.0.0", "openmetrics"),
        ("application/openmetrics-text;version=2.0.0,text/plain;q=0.1", "text"),
        ("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5", "text"),
        ("application/openmetrics-text;q=0", "text"),
        ("*/*", "text"),
        ("", "text"),
    ],
)
def test_the_format_follows_the_accept_header(accept: str, expected: str) -> None:
    assert negotiate_format(accept) == expected


@pytest.mark.parametrize(
    ("accept_encoding", "expected"),
    [
        ("gzip", True),
        ("br, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("", False),
    ],
)
def test_gzip_when_accepted(accept_encoding: str, expected: bool) -> None:
    assert accepts_gzip(accept_encoding) is expected


def test_many_scrapes_of_random_changes_stay_identical(
    store_and_metrics: tuple[ResultStore, Metrics],
) -> None:
    """Probes change between scrapes at different paces, so they move between the groups a
    family keeps (and groups merge): the content stays that of a fresh render."""
    store, metrics = store_and_metrics
    rng = random.Random(16)
    ids = [f"p{n:03d}" for n in range(120)]
    store.track(ids)
    groups: list[int] = []
    for scrape in range(3 * MAX_GROUPS):
        for service_id in rng.sample(ids, rng.randint(0, 8)):
            grade = rng.choice(list(Grade))
            store.put(result(service_id, "mongo_replication_lag", grade=grade, at_ms=scrape))
            members = rng.sample(["db1", "db2", "db3", "db4"], rng.randint(0, 3))
            metrics.set_kind_series(LAG, service_id, {m: rng.random() for m in members})
        if scrape % 17 == 16:
            gone = rng.sample(ids, 5)
            store.track(set(ids) - set(gone))
            for service_id in gone:
                metrics.forget(service_id, installed_kinds().kinds["mongo_replication_lag"])
            store.track(ids)
        for _ in metrics.refresh():
            pass
        scrape_now = metrics.scrape("openmetrics", compressed=scrape % 2 == 0)
        scrape_now.build()
        scrape_now.finish()
        groups.append(metrics._table.groups())
        if scrape % 8 == 0:
            assert_same(metrics)
    assert_same(metrics)
    assert max(groups) == MAX_GROUPS + 1  # the cap and the open group: merging held it


def test_an_abandoned_refresh_leaves_the_rest_for_the_next_scrape(
    store_and_metrics: tuple[ResultStore, Metrics],
) -> None:
    store, metrics = store_and_metrics
    ids = [f"p{n}" for n in range(10)]
    store.track(ids)
    for service_id in ids:
        store.put(result(service_id, "prometheus_query"))
    steps = metrics.refresh(batch=3)
    next(steps)  # one batch, then the scrape is cancelled (the client went away)
    steps.close()

    assert_same(metrics)
    assert len(metrics._table.rows()) == 10
