"""Schemathesis fuzzes every operation of the served /openapi.json against a real server
(tests/served.py: two probes against the simulated monitoring APIs): no server error, and every
answer's status code, content type, headers and body are the documented ones. Then again with
access control on: with the token nothing is refused; without it (or with a wrong one) every
operation but the open health endpoints answers the documented 401.

Bounded and deterministic: a fixed number of examples per operation (a few hundred in all),
derandomized Hypothesis (the same examples every run), no example database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.served import SERVED_IDS, Served, served
from zeroprobe.config.access import OPEN_ENDPOINTS
from zeroprobe.web.openapi import OPENAPI_PATH, openapi_document

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Examples per operation and generation mode: about 30 operations x (8 + 8 + 4 for a known id).
EXAMPLES = 8
HTTP_METHODS = ("get", "head", "put", "post", "delete", "patch", "options", "trace")
OPERATIONS = sorted(
    (path, method)
    for path, item in openapi_document()["paths"].items()
    for method in item
    if method in HTTP_METHODS
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("contexts")) as running:
        yield running


@pytest.fixture(scope="module")
def schema(server: Served) -> Any:
    """The document as served, loaded by schemathesis."""
    return schemathesis.openapi.from_url(server.url + OPENAPI_PATH, timeout=10)


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_every_documented_operation_is_fuzzed(schema: Any) -> None:
    loaded = {
        (result.ok().path, result.ok().method.lower()) for result in schema.get_all_operations()
    }

    # schemathesis leaves out the operation serving the schema it loaded; fuzzed all the same.
    assert set(OPERATIONS) - loaded == {(OPENAPI_PATH, "get")}
    assert loaded <= set(OPERATIONS)


def fuzz(
    served_at: Served,
    operation: Any,
    http: requests.Session,
    *,
    examples: int,
    headers: dict[str, str] | None = None,
    expect: Callable[[Any], None] | None = None,
) -> None:
    """Positive and negative examples (and, for /{service_id} paths, a known id) against
    `served_at`, each answer checked against the document, then by `expect`."""
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if "{service_id}" in operation.path:  # random ids are unknown ones: known ids answer too
        strategies.append(operation.as_strategy(path_parameters={"service_id": SERVED_IDS[0]}))
    served_at.logs.records.clear()

    @settings(
        max_examples=examples * len(strategies),
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def answers_as_documented(case: Case[Any]) -> None:
        response = case.call_and_validate(
            base_url=served_at.url, session=http, headers=headers, checks=CHECKS, timeout=10
        )
        if expect is not None:
            expect(response)

    answers_as_documented()
    assert served_at.logs.lines() == []


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_operation_answers_as_documented(
    server: Served, schema: Any, http: requests.Session, path: str, method: str
) -> None:
    fuzz(server, schema[path][method.upper()], http, examples=EXAMPLES)


# --- with access control on -----------------------------------------------------------------

TOKEN = "fuzz-0123456789abcdef-token"
WITH_TOKEN = {"Authorization": f"Bearer {TOKEN}"}
OPEN_PATHS = set(OPEN_ENDPOINTS.values())


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("contexts"), auth_token=TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def guarded_schema(guarded: Served) -> Any:
    return schemathesis.openapi.from_url(guarded.url + OPENAPI_PATH, headers=WITH_TOKEN, timeout=10)


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_with_the_token_operation_answers_as_documented(
    guarded: Served, guarded_schema: Any, http: requests.Session, path: str, method: str
) -> None:
    def not_refused(response: Any) -> None:
        assert response.status_code != 401

    operation = guarded_schema[path][method.upper()]
    fuzz(guarded, operation, http, examples=EXAMPLES // 4, headers=WITH_TOKEN, expect=not_refused)


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_without_the_token_operation_answers_401_as_documented(
    guarded: Served, guarded_schema: Any, http: requests.Session, path: str, method: str
) -> None:
    def refused_unless_open(response: Any) -> None:
        if path in OPEN_PATHS:
            assert response.status_code != 401
        else:
            assert response.status_code == 401
            assert len(response.headers["www-authenticate"]) == 2  # Bearer and Basic
            assert TOKEN not in response.text

    operation = guarded_schema[path][method.upper()]
    wrong = {"Authorization": f"Bearer {TOKEN[:-1]}x"}
    fuzz(guarded, operation, http, examples=EXAMPLES // 4, expect=refused_unless_open)
    fuzz(guarded, operation, http, examples=1, headers=wrong, expect=refused_unless_open)
