"""Contracts between parts: exported schemas, registry and specs, env names, durations, secrets."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from probes.redact import Redactor
from schemas.context_spec import connection_env_var
from schemas.durations import format_duration, parse_duration_s
from tests.conftest import TESTS
from zeroprobe.cli import main
from zeroprobe.config.kinds import installed_kinds, spec_kind
from zeroprobe.config.schema_export import rendered_schemas

REPO = TESTS.parent
SCHEMAS = REPO / "schemas"


def test_exported_schema_files_are_up_to_date() -> None:
    rendered = rendered_schemas()

    assert sorted(p.name for p in SCHEMAS.glob("*.schema.json")) == sorted(rendered), (
        "schemas/*.schema.json and the exported schemas differ in files: run `make schemas`"
    )
    for name, text in rendered.items():
        on_disk = (SCHEMAS / name).read_text(encoding="utf-8")
        assert on_disk == text, f"schemas/{name} is out of date: run `make schemas`"


BUILT_IN = ("alertmanager_alerts", "mongo_replication_lag", "pipeline_health", "prometheus_query")


def test_built_in_kinds_register_through_the_entry_point_group() -> None:
    registry = installed_kinds()

    assert registry.problems == ()
    for name in BUILT_IN:
        entry = registry.installed[name]
        assert (entry.distribution, entry.target) == ("zeroprobe", f"probes.{name}:KIND")
        assert entry.kind.name == name == spec_kind(entry.kind.spec)


@pytest.mark.parametrize(
    ("label", "variable"),
    [
        ("clusterKeeper", "ZEROPROBE_CONNECTION_CLUSTERKEEPER"),
        ("db-1.prod", "ZEROPROBE_CONNECTION_DB_1_PROD"),
        ("orders_rs", "ZEROPROBE_CONNECTION_ORDERS_RS"),
        ("A1", "ZEROPROBE_CONNECTION_A1"),
    ],
)
def test_connection_label_names_its_environment_variable(label: str, variable: str) -> None:
    assert connection_env_var(label) == variable


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0),
        ("2m", 120.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1.5m", 90.0),
        ("0.5s", 0.5),
        (" 30s ", 30.0),
        ("45", 45.0),
        (30, 30.0),
        (2.5, 2.5),
    ],
    ids=repr,
)
def test_duration_parses(value: object, seconds: float) -> None:
    assert parse_duration_s(value) == seconds


LIKE = "expected a duration like '30s', '2m', '1m30s' or '500ms', got"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "expected a duration like '30s' or '2m', got True"),
        (False, "expected a duration like '30s' or '2m', got False"),
        (None, "expected a duration like '30s' or '2m', got None"),
        ([30], "expected a duration like '30s' or '2m', got [30]"),
        (0, "must be a positive duration, got 0"),
        (0.0, "must be a positive duration, got 0.0"),
        ("0s", "must be a positive duration, got '0s'"),
        (-5, "must be a positive duration, got -5"),
        ("-5", "must be a positive duration, got '-5'"),
        ("-5s", f"{LIKE} '-5s'"),
        ("nan", "must be a positive duration, got 'nan'"),
        (float("inf"), "must be a positive duration, got inf"),
        ("", f"{LIKE} ''"),
        ("30 seconds", f"{LIKE} '30 seconds'"),
        ("1m30", f"{LIKE} '1m30'"),
        ("1d", f"{LIKE} '1d'"),
        ("30S", f"{LIKE} '30S'"),
    ],
    ids=repr,
)
def test_duration_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_duration_s(value)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(90.0, "90s"), (0.5, "500ms"), (2.5, "2.5s"), (1.0, "1s")],
)
def test_duration_formats_the_way_people_write_it(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (
            "cannot reach mongodb://monitor:s3cret@db1:27017/?replicaSet=rs0",
            "cannot reach mongodb://***@db1:27017/?replicaSet=rs0",
        ),
        (
            "mongodb+srv://monitor:s3cret@cluster0.example.net/admin",
            "mongodb+srv://***@cluster0.example.net/admin",
        ),
        ("mongodb://monitor:p%40ss%2Fw0rd@db1:27017", "mongodb://***@db1:27017"),
        ("mongodb://monitor:p@ss@db1:27017/admin", "mongodb://***@db1:27017/admin"),
        ("uri='mongodb://u:pw@h1,h2/x'", "uri='mongodb://***@h1,h2/x'"),
        ("Authorization: Bearer eyJhbGciOi.abc", "Authorization: ***"),
        ("authorization=Basic dXNlcjpwYXNz", "authorization=***"),
        ("headers {'Authorization': 'Bearer abc.def'}", "headers {'Authorization': '***'}"),
        ('{"Authorization": "Basic dXNlcjpwYXNz"}', '{"Authorization": "***"}'),
        ("X-Api-Key: 12345abcde", "X-Api-Key: ***"),
        ("GET /status?token=abc123&verbose=1", "GET /status?token=***&verbose=1"),
        ("https://h/?access_token=abc&api_key=zzz", "https://h/?access_token=***&api_key=***"),
        ("login password=hunter2 failed", "login password=*** failed"),
    ],
)
def test_redactor_removes_credential_shapes(text: str, redacted: str) -> None:
    assert Redactor()(text) == redacted


@pytest.mark.parametrize(
    "text",
    [
        "- Secondary db2.example.com:27017 replication lag 5000ms",
        "mongodb://db1:27017,db2:27017/?replicaSet=rs0",
        "mail ops@example.com about the token bucket",
        "authorization failed for user monitor",
        "No primary: an election is running",
        "",
    ],
)
def test_redactor_leaves_ordinary_text_alone(text: str) -> None:
    assert Redactor(["mongodb://monitor:s3cret@db1:27017"])(text) == text


def test_redactor_removes_known_secret_values_wherever_they_appear() -> None:
    uri = "mongodb://monitor:p%40ss%2Fw0rd@db1:27017/?replicaSet=rs0"
    redact = Redactor([uri, "hunter2hunter2"])

    assert redact(f"the uri {uri} failed") == "the uri *** failed"
    assert redact("auth failed for monitor with p@ss/w0rd") == "auth failed for monitor with ***"
    assert redact("encoded p%40ss%2Fw0rd here") == "encoded *** here"
    assert redact("secret hunter2hunter2 here") == "secret *** here"


def test_redactor_from_environ_knows_only_connection_variables() -> None:
    redact = Redactor.from_environ(
        {
            "ZEROPROBE_CONNECTION_RS": "mongodb://monitor:longpassword@h",
            "HOME": "/home/zeroprobe",
        }
    )

    assert redact("longpassword in /home/zeroprobe") == "*** in /home/zeroprobe"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`main` replaces the root logger's handlers: put the test runner's back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_shipped_contexts_pass_check(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", str(REPO / "contexts")], environ={})

    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("ok: "), out
    # Without connection variables, warnings are expected; errors are not.
    assert all(": warning: " in line for line in err.splitlines()), err
