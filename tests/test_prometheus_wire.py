"""prometheus_query against a real Prometheus (Debian's), scraping an exporter the tests set.

Every run goes through `Engine.run_once`: connection label, shared HTTP session, probe, error
mapping, grading and store are all on the path. What Prometheus itself says (error texts,
warnings) is read back from its API directly, not through the code under test.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from pathlib import Path

from schemas.grading import Grade, Line
from tests.conftest import EngineFactory, QuerySpecFactory, run_against
from tests.servers import WARN_MATCHER, Exporter, PrometheusServer, free_port, outage

SERVICE_ID = "test.prom.query"  # the make_query_spec default
CONNECTION_VAR = "ZEROPROBE_CONNECTION_PROM"  # its label "prom"


async def expose(
    exporter: Exporter,
    prometheus: PrometheusServer,
    metric: str,
    values: Mapping[str, float],
    label: str = "case",
) -> None:
    """Expose `metric{label=key} value` and wait until Prometheus has scraped exactly those."""
    for key, value in values.items():
        exporter.set(metric, {label: key}, value)
    await asyncio.to_thread(prometheus.wait_for_values, metric, values, label)


async def test_direction_above_bands_are_half_open_over_the_wire(
    exporter: Exporter,
    prometheus: PrometheusServer,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
) -> None:
    await expose(exporter, prometheus, "zp_above", {"a": 9.5, "b": 10, "c": 19.5, "d": 20, "e": 25})

    result = await run_against(
        make_engine, make_query_spec, prometheus.url, query="zp_above", line="- {case} {value}"
    )

    assert list(result.lines) == [
        Line("- e 25", Grade.RED),
        Line("- d 20", Grade.RED),
        Line("- c 19.5", Grade.YELLOW),
        Line("- b 10", Grade.YELLOW),
        Line("- a 9.5", Grade.GREEN),
    ]
    assert result.grade is Grade.RED
    assert result.outcome == "success"

    below_red = await run_against(
        make_engine,
        make_query_spec,
        prometheus.url,
        query='zp_above{case=~"a|b"}',
        line="- {case} {value}",
    )
    assert below_red.grade is Grade.YELLOW


async def test_direction_below_bands_mirror_above(
    exporter: Exporter,
    prometheus: PrometheusServer,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
) -> None:
    values = {"a": 25, "b": 20.5, "c": 20, "d": 10.5, "e": 10, "f": 0}
    await expose(exporter, prometheus, "zp_free_disk", values)

    result = await run_against(
        make_engine,
        make_query_spec,
        prometheus.url,
        query="zp_free_disk",
        direction="below",
        thresholds={"yellow": 20, "red": 10},
        line="- {case} free {value}%",
    )

    assert list(result.lines) == [
        Line("- f free 0%", Grade.RED),
        Line("- e free 10%", Grade.RED),
        Line("- d free 10.5%", Grade.YELLOW),
        Line("- c free 20%", Grade.YELLOW),
        Line("- b free 20.5%", Grade.GREEN),
        Line("- a free 25%", Grade.GREEN),
    ]
    assert result.grade is Grade.RED


async def test_default_line_names_the_series_and_writes_numbers_readably(
    exporter: Exporter,
    prometheus: PrometheusServer,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
) -> None:
    await expose(exporter, prometheus, "zp_ratio", {"payments": 0.052300000000000006}, "svc")

    result = await run_against(
        make_engine,
        make_query_spec,
        prometheus.url,
        query="zp_ratio",
        thresholds={"yellow": 0.01, "red": 0.05},
    )

    series = f'zp_ratio{{instance="{exporter.address}", job="exporter", svc="payments"}}'
    assert list(result.lines) == [Line(f"- {series} 0.0523", Grade.RED)]
    document = json.loads(result.document)[SERVICE_ID]
    assert document["status"] == "RED"
    assert document["messages"][0]["actionBody"] == f"- {series} 0.0523"


async def test_empty_result_takes_on_empty(
    prometheus: PrometheusServer, make_engine: EngineFactory, make_query_spec: QuerySpecFactory
) -> None:
    query = "zp_never_exported"
    default = await run_against(make_engine, make_query_spec, prometheus.url, query=query)
    red = await run_against(
        make_engine, make_query_spec, prometheus.url, query=query, on_empty="RED"
    )
    green = await run_against(
        make_engine, make_query_spec, prometheus.url, query=query, on_empty="GREEN"
    )

    assert list(default.lines) == [Line("- no data", Grade.YELLOW)]
    assert list(red.lines) == [Line("- no data", Grade.RED)]
    assert list(green.lines) == [Line("- no data", Grade.GREEN)]
    assert default.outcome == red.outcome == green.outcome == "success"


async def test_nan_and_infinities_are_yellow_naming_the_series(
    exporter: Exporter,
    prometheus: PrometheusServer,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
) -> None:
    values = {"sda": math.nan, "sdb": math.inf, "sdc": -math.inf, "sdd": 1.0}
    await expose(exporter, prometheus, "zp_odd", values, "disk")

    result = await run_against(
        make_engine, make_query_spec, prometheus.url, query="zp_odd", line="- {disk} {value}"
    )

    assert list(result.lines) == [
        Line("- sda NaN (NaN is not a number to compare)", Grade.YELLOW),
        Line("- sdb +Inf (+Inf is not a number to compare)", Grade.YELLOW),
        Line("- sdc -Inf (-Inf is not a number to compare)", Grade.YELLOW),
        Line("- sdd 1", Grade.GREEN),
    ]
    assert result.grade is Grade.YELLOW


async def test_scalar_results(
    exporter: Exporter,
    prometheus: PrometheusServer,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
) -> None:
    await expose(exporter, prometheus, "zp_scalar", {"only": 7.25})

    from_series = await run_against(
        make_engine, make_query_spec, prometheus.url, query="scalar(zp_scalar)"
    )
    literal = await run_against(make_engine, make_query_spec, prometheus.url, query="2.5 * 10")

    assert list(from_series.lines) == [Line("- scalar 7.25", Grade.GREEN)]
    assert list(literal.lines) == [Line("- scalar 25", Grade.RED)]


async def test_string_and_matrix_results_are_explicit_errors(
    exporter: Exporter,
    prometheus: PrometheusServer,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
) -> None:
    await expose(exporter, prometheus, "zp_ranged", {"x": 1})

    string = await run_against(make_engine, make_query_spec, prometheus.url, query='"hello"')
    matrix = await run_against(make_engine, make_query_spec, prometheus.url, query="zp_ranged[30s]")

    assert list(string.lines) == [
        Line(
            "- the query returned a string ('hello'), not a number: write an expression that "
            "returns an instant vector or a scalar",
            Grade.RED,
        )
    ]
    assert list(matrix.lines) == [
        Line(
            "- the query returned a range vector (matrix), which has no single value to grade: "
            "remove the range selector [..] or wrap it in a function such as rate() or "
            "max_over_time()",
            Grade.RED,
        )
    ]
    assert string.outcome == matrix.outcome == "error"


async def test_many_series_worst_first_with_max_lines(
    exporter: Exporter,
    prometheus: PrometheusServer,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
) -> None:
    await expose(exporter, prometheus, "zp_many", {f"p{i:02d}": i for i in range(25)}, "pod")

    result = await run_against(
        make_engine,
        make_query_spec,
        prometheus.url,
        query="zp_many",
        line="- {pod} {value}",
        max_lines=5,
    )

    assert list(result.lines) == [
        Line("- p24 24", Grade.RED),
        Line("- p23 23", Grade.RED),
        Line("- p22 22", Grade.RED),
        Line("- p21 21", Grade.RED),
        Line("- p20 20", Grade.RED),
        Line("- …and 20 more series (10 YELLOW, 10 GREEN)", None),
    ]
    assert result.grade is Grade.RED


async def test_bad_promql_is_red_with_prometheus_own_error_text(
    prometheus: PrometheusServer, make_engine: EngineFactory, make_query_spec: QuerySpecFactory
) -> None:
    query = "sum(rate(zp_many[5m])"
    said = await asyncio.to_thread(prometheus.query, query)
    assert said["errorType"] == "bad_data"

    result = await run_against(make_engine, make_query_spec, prometheus.url, query=query)

    assert list(result.lines) == [
        Line(f"- Prometheus rejected the query: {said['error']}", Grade.RED)
    ]
    assert result.outcome == "error"
    assert result.reached_target is True


async def test_execution_error_is_red_with_prometheus_own_error_text(
    exporter: Exporter,
    prometheus: PrometheusServer,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
) -> None:
    await expose(exporter, prometheus, "zp_dup", {"a": 1, "b": 2})
    # Both series end up with the same labels: Prometheus refuses to execute (HTTP 422).
    query = 'label_replace(zp_dup, "case", "same", "", "")'
    said = await asyncio.to_thread(prometheus.query, query)
    assert said["errorType"] == "execution"

    result = await run_against(make_engine, make_query_spec, prometheus.url, query=query)

    assert list(result.lines) == [
        Line(f"- Prometheus could not execute the query: {said['error']} (execution)", Grade.RED)
    ]


async def test_warnings_of_prometheus_are_shown(
    exporter: Exporter,
    prometheus: PrometheusServer,
    make_engine: EngineFactory,
    make_query_spec: QuerySpecFactory,
) -> None:
    exporter.set("zp_warned", {"zp_warn": "yes", "pod": "a"}, 3)
    query = f"zp_warned{{{WARN_MATCHER}}}"
    await asyncio.to_thread(prometheus.wait_for, query, lambda result: len(result) == 1)
    said = await asyncio.to_thread(prometheus.query, query)
    assert said["warnings"], said

    result = await run_against(
        make_engine, make_query_spec, prometheus.url, query=query, line="- {pod} {value}"
    )

    assert list(result.lines) == [
        Line("- a 3", Grade.GREEN),
        *(Line(f"- Prometheus warning: {text}", None) for text in said["warnings"]),
    ]
    assert result.grade is Grade.GREEN


async def test_stopped_server_is_red_and_a_restarted_one_recovers(
    tmp_path: Path, make_engine: EngineFactory, make_query_spec: QuerySpecFactory
) -> None:
    server = PrometheusServer(tmp_path, free_port())
    engine = make_engine([make_query_spec(query="vector(3)")], {CONNECTION_VAR: server.url})
    refused = Line(
        f"- cannot connect to Prometheus at 127.0.0.1:{server.port}: connection refused",
        Grade.RED,
    )

    healthy, stopped, recovered = await outage(engine, server)

    assert list(healthy.lines) == [Line("- {} 3", Grade.GREEN)]
    assert list(stopped.lines) == [refused]
    assert stopped.outcome == "error"
    assert stopped.reached_target is False
    assert list(recovered.lines) == [Line("- {} 3", Grade.GREEN)]
    assert recovered.outcome == "success"
