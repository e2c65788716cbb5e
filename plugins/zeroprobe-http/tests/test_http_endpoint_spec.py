"""The http_endpoint spec: defaults, what may be written, and one clear message per mistake,
also as `zeroprobe check` prints it (path:line: field: message)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from endpoint_helpers import SpecFactory
from pydantic import ValidationError
from zeroprobe_http.kind import KIND
from zeroprobe_http.spec import MAX_CHECKS, EndpointCheck, HttpEndpointSpec

from probes.http_client import MAX_CONNECTIONS_PER_TARGET
from zeroprobe.config.kinds import installed_kinds
from zeroprobe.config.schema_export import context_spec_schema

ZEROPROBE = Path(sys.executable).with_name("zeroprobe")


def errors_of(make_spec: SpecFactory, **fields: Any) -> list[tuple[str, str]]:
    """(dotted location, message) of every error of a spec with `fields`."""
    with pytest.raises(ValidationError) as raised:
        make_spec(**fields)
    return [
        (".".join(str(p) for p in e["loc"]), str(e["msg"]).removeprefix("Value error, "))
        for e in raised.value.errors(include_url=False)
    ]


def test_the_kind_is_installed_through_its_entry_point() -> None:
    registry = installed_kinds()
    entry = registry.installed["http_endpoint"]

    assert entry.kind is KIND
    assert entry.distribution == "zeroprobe-http"
    assert entry.target == "zeroprobe_http.kind:KIND"
    assert not [p for p in registry.problems if "http_endpoint" in p]
    assert KIND.secret_env_fields == ("bearer_token_env",)
    assert KIND.liveness_needs_target is False


def test_defaults(make_spec: SpecFactory) -> None:
    spec = make_spec()

    (check,) = spec.checks
    assert (check.path, check.method, check.expect_status) == ("/", "GET", [200])
    assert (check.body_matches, check.body_not_matches) == (None, None)
    assert (check.response_time.yellow, check.response_time.red) == (1.0, 5.0)
    assert (spec.certificate.yellow_days, spec.certificate.red_days) == (14, 7)
    assert (spec.tls_verify, spec.tls_ca_file, spec.bearer_token_env) == (True, None, None)
    assert check.name == "GET /"


def test_what_may_be_written(make_spec: SpecFactory) -> None:
    spec = make_spec(
        bearer_token_env="SHOP_TOKEN",
        checks=[
            {
                "path": "/health?full=1",
                "method": "post",
                "expect_status": [200, "204", "3XX"],
                "body_matches": r'"status":\s*"ok"',
                "body_not_matches": "maintenance|error",
                "response_time": {"yellow": "500ms", "red": "1.5s"},
            },
            {"path": "/", "method": "HEAD", "expect_status": ["2xx"]},
        ],
        certificate={"yellow_days": 30, "red_days": 0},
        tls_ca_file="/etc/zeroprobe/ca/internal.pem",
    )

    first, second = spec.checks
    assert first.method == "POST"
    assert first.expect_status == [200, 204, "3xx"]
    assert (first.response_time.yellow, first.response_time.red) == (0.5, 1.5)
    assert first.name == "POST /health?full=1"
    assert second.expect_status == ["2xx"]
    assert (spec.certificate.yellow_days, spec.certificate.red_days) == (30, 0)


def test_a_short_timeout_with_the_default_bands_is_a_choice_not_a_mistake(
    make_spec: SpecFactory,
) -> None:
    # 1s timeout: a request gets 0.75s, so the default YELLOW (1s) is never reached; the
    # timeout's RED line comes first, as the author asked by choosing it.
    spec = make_spec(interval="5s", timeout="1s", checks=[{"path": "/health"}])

    assert spec.checks[0].response_time.yellow == 1.0


MISTAKES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "connection-is-a-uri",
        {"connection": "https://user:pw@shop.example"},
        "connection",
        "must be a label, not a URI",
    ),
    (
        "path-without-slash",
        {"checks": [{"path": "health"}]},
        "checks.0.path",
        "'health' is not a path: write the path below the connection's base URL",
    ),
    (
        "path-is-a-url",
        {"checks": [{"path": "https://shop.example/health"}]},
        "checks.0.path",
        "(the scheme and host come from the connection)",
    ),
    (
        "path-names-a-host",
        {"checks": [{"path": "//evil.example/x"}]},
        "checks.0.path",
        "is not a path",
    ),
    (
        "path-with-a-space",
        {"checks": [{"path": "/a b"}]},
        "checks.0.path",
        "'/a b' has a space or a control character: percent-encode it (%20)",
    ),
    (
        "path-with-a-fragment",
        {"checks": [{"path": "/page#top"}]},
        "checks.0.path",
        "a fragment is never sent to the server",
    ),
    (
        "unknown-method",
        {"checks": [{"method": "FETCH"}]},
        "checks.0.method",
        "'FETCH' is not a method this kind sends: use GET, HEAD, POST, PUT, DELETE, OPTIONS "
        "or PATCH",
    ),
    (
        "no-expected-status",
        {"checks": [{"expect_status": []}]},
        "checks.0.expect_status",
        "List should have at least 1 item",
    ),
    (
        "status-out-of-range",
        {"checks": [{"expect_status": [200, 99]}]},
        "checks.0.expect_status.1",
        "99 is not an HTTP status: codes run from 100 to 599",
    ),
    (
        "status-class-misspelt",
        {"checks": [{"expect_status": ["2xy"]}]},
        "checks.0.expect_status.0",
        "'2xy' is not a status: write a code like 200 or a class like '2xx'",
    ),
    (
        "status-is-a-boolean",
        {"checks": [{"expect_status": [True]}]},
        "checks.0.expect_status.0",
        "expected a status code like 200",
    ),
    (
        "body-regex-invalid",
        {"checks": [{"body_matches": "(ok"}]},
        "checks.0.body_matches",
        "'(ok' is not a valid regular expression: missing ), unterminated subpattern",
    ),
    (
        "body-regex-empty",
        {"checks": [{"body_not_matches": ""}]},
        "checks.0.body_not_matches",
        "must not be empty",
    ),
    (
        "body-of-a-head",
        {"checks": [{"method": "HEAD", "body_matches": "ok"}]},
        "checks.0",
        "a HEAD reply has none: use method GET",
    ),
    (
        "response-time-red-not-above-yellow",
        {"checks": [{"response_time": {"yellow": "2s", "red": "500ms"}}]},
        "checks.0.response_time.red",
        "red (500ms) must be greater than yellow (2s)",
    ),
    (
        "response-time-not-a-duration",
        {"checks": [{"response_time": {"yellow": "fast"}}]},
        "checks.0.response_time.yellow",
        "expected a duration like '30s', '2m', '1m30s' or '500ms', got 'fast'",
    ),
    (
        "response-time-beyond-the-timeout",
        {"checks": [{"path": "/slow", "response_time": {"yellow": "1.8s", "red": "3s"}}]},
        "checks",
        "check 1 (GET /slow): response_time.yellow (1.8s) is never reached: a request gives up "
        "after 1.6s (its share of timeout 2s); lower yellow or raise timeout",
    ),
    (
        "unknown-check-field",
        {"checks": [{"path": "/", "metod": "GET"}]},
        "checks.0",
        "unknown field 'metod', did you mean 'method'? (allowed: body_matches, "
        "body_not_matches, expect_status, method, path, response_time)",
    ),
    (
        "unknown-response-time-field",
        {"checks": [{"response_time": {"yelow": "1s"}}]},
        "checks.0.response_time",
        "unknown field 'yelow', did you mean 'yellow'? (allowed: red, yellow)",
    ),
    (
        "a-check-twice",
        {"checks": [{"path": "/health"}, {"path": "/"}, {"path": "/health"}]},
        "checks",
        "checks 1 and 3 are both GET /health: each request once",
    ),
    ("no-checks", {"checks": []}, "checks", "List should have at least 1 item"),
    (
        "too-many-checks",
        {"checks": [{"path": f"/{n}"} for n in range(17)]},
        "checks",
        "List should have at most 16 items",
    ),
    (
        "certificate-red-not-below-yellow",
        {"certificate": {"yellow_days": 14, "red_days": 20}},
        "certificate.red_days",
        "red_days (20) must be less than yellow_days (14)",
    ),
    (
        "certificate-negative-days",
        {"certificate": {"red_days": -1}},
        "certificate.red_days",
        "greater than or equal to 0",
    ),
    (
        "certificate-unknown-field",
        {"certificate": {"warn_days": 3}},
        "certificate.warn_days",
        "Extra inputs are not permitted",
    ),
    ("tls-verify-as-text", {"tls_verify": "no"}, "tls_verify", "valid boolean"),
    (
        "ca-file-relative",
        {"tls_ca_file": "ca/internal.pem"},
        "tls_ca_file",
        "'ca/internal.pem' is not an absolute path: write the full path of the PEM file",
    ),
    (
        "ca-file-without-verification",
        {"tls_verify": False, "tls_ca_file": "/etc/ssl/internal.pem"},
        "tls_ca_file",
        "has no use with tls_verify: false (nothing is verified): remove one of them",
    ),
    (
        "token-instead-of-its-variable",
        {"bearer_token_env": "eyJhbGciOi.secret-token"},
        "bearer_token_env",
        "must name an environment variable that holds the token",
    ),
]


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [case[1:] for case in MISTAKES],
    ids=[case[0] for case in MISTAKES],
)
def test_every_mistake_has_a_clear_message(
    make_spec: SpecFactory, fields: dict[str, Any], where: str, message: str
) -> None:
    errors = errors_of(make_spec, **fields)

    assert len(errors) == 1, errors
    ((location, text),) = errors
    assert location == where
    assert message in text, text


def test_a_token_written_in_place_of_its_variable_is_never_quoted(make_spec: SpecFactory) -> None:
    with pytest.raises(ValidationError) as raised:
        make_spec(bearer_token_env="tok-9f8e7d6c5b4a")

    assert "9f8e7d6c5b4a" not in str(raised.value).split("input_value")[0]


def test_the_context_spec_schema_holds_the_kind_and_accepts_a_full_spec() -> None:
    schema = context_spec_schema()
    spec = {
        "service_id": "shop.web.health",
        "kind": "http_endpoint",
        "connection": "shop",
        "checks": [
            {
                "path": "/health",
                "method": "GET",
                "expect_status": [200, "2xx"],
                "body_matches": "ok",
                "response_time": {"yellow": "500ms", "red": 2},
            }
        ],
        "certificate": {"yellow_days": 21, "red_days": 7},
        "tls_verify": True,
        "tls_ca_file": "/etc/ca.pem",
    }

    jsonschema.validate(spec, schema)
    bad = {**spec, "checks": [{"method": "FETCH"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_a_spec_s_checks_fit_in_the_client_s_connections_to_one_target() -> None:
    # All checks are sent at once: one more than the connections a target may have would wait
    # for a connection, and the wait would count as its response time.
    assert MAX_CHECKS <= MAX_CONNECTIONS_PER_TARGET


def test_a_check_without_fields_is_get_slash() -> None:
    assert EndpointCheck().name == "GET /"
    assert HttpEndpointSpec.model_fields["checks"].get_default(call_default_factory=True) == [
        EndpointCheck()
    ]


BAD_SPEC = """\
service_id: shop.web.health
kind: http_endpoint
connection: shop
checks:
  - path: /health
    method: FETCH
    body_matches: "(ok"
  - path: status
    response_time:
      yellow: 3s
      red: 1s
certificate:
  yellow_days: 7
  red_days: 14
tls_ca_file: ca.pem
"""


def test_zeroprobe_check_prints_every_mistake_with_its_line(tmp_path: Path) -> None:
    contexts = tmp_path / "contexts"
    contexts.mkdir()
    (contexts / "shop.web.health.yaml").write_text(BAD_SPEC, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ZEROPROBE_")}

    result = subprocess.run(
        [str(ZEROPROBE), "check", "contexts"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    name = "contexts/shop.web.health.yaml"
    assert result.stderr.splitlines()[:-1] == [
        f"{name}:6: checks.0.method: 'FETCH' is not a method this kind sends: use GET, HEAD, "
        "POST, PUT, DELETE, OPTIONS or PATCH",
        f"{name}:7: checks.0.body_matches: '(ok' is not a valid regular expression: missing ), "
        "unterminated subpattern at position 0",
        f"{name}:8: checks.1.path: 'status' is not a path: write the path below the "
        "connection's base URL, starting with one '/', like /health (the scheme and host come "
        "from the connection)",
        f"{name}:11: checks.1.response_time.red: red (1s) must be greater than yellow (3s)",
        f"{name}:14: certificate.red_days: red_days (14) must be less than yellow_days (7)",
        f"{name}:15: tls_ca_file: 'ca.pem' is not an absolute path: write the full path of the "
        "PEM file, like /etc/zeroprobe/ca/internal.pem (a relative one would depend on where "
        "zeroprobe starts)",
    ]
    assert result.stderr.splitlines()[-1].endswith("error(s) in 1 file(s); 0 valid spec(s)")


def test_zeroprobe_check_passes_a_good_spec_and_warns_of_an_unset_connection(
    tmp_path: Path,
) -> None:
    contexts = tmp_path / "contexts"
    contexts.mkdir()
    (contexts / "shop.web.health.yaml").write_text(
        "service_id: shop.web.health\nkind: http_endpoint\nconnection: shop\n"
        "bearer_token_env: SHOP_TOKEN\nchecks:\n  - path: /health\n    body_matches: ok\n",
        encoding="utf-8",
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ZEROPROBE_")}
    environ.pop("SHOP_TOKEN", None)

    result = subprocess.run(
        [str(ZEROPROBE), "check", "contexts"],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok: 1 valid spec(s) in contexts\n"
    assert result.stderr.splitlines() == [
        "contexts/shop.web.health.yaml:3: connection: warning: ZEROPROBE_CONNECTION_SHOP is not "
        "set: the probe will report RED until it is",
        "contexts/shop.web.health.yaml:4: bearer_token_env: warning: SHOP_TOKEN is not set: the "
        "probe will report RED until it is",
    ]
