"""Loading context-spec files: every mistake an SRE can make, and the exact line they see.

The INVALID table is documentation: each file of tests/testdata/contexts/invalid/ holds one
mistake (a few hold several), paired with what `zeroprobe check` prints for it. The paths are
relative to tests/testdata/contexts/, the folder every test here runs in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TESTDATA
from zeroprobe.config.kinds import installed_kinds
from zeroprobe.config.loader import load_contexts, load_file

CONTEXTS = TESTDATA / "contexts"
ALLOWED = (
    "(allowed: config_servers, confirm, connection, description, election_window, interval, "
    "kind, labels, oplog, service_id, shard_connections, thresholds, timeout)"
)
ID_RULE = "use letters, digits, '.', '_' and '-', starting with a letter or digit"
KINDS = ", ".join(installed_kinds().names())
GRADES = "Input should be 'GREEN', 'YELLOW' or 'RED'"

# File name -> the problems printed for it, each as `line: field: message` after `path:`.
INVALID: dict[str, list[str]] = {
    "invalid-bad-characters.yaml": [
        f"2: service_id: 'orders/mongo lag' is not a valid service id: {ID_RULE}",
    ],
    "invalid-bad-duration.yaml": [
        "5: interval: expected a duration like '30s', '2m', '1m30s' or '500ms', got '30 seconds'",
    ],
    "invalid-connection-bad-label.yaml": [
        f"4: connection: 'orders cluster' is not a valid connection label: {ID_RULE}",
    ],
    "invalid-connection-uri.yaml": [
        "4: connection: must be a label, not a URI: put the URI in the environment variable "
        "ZEROPROBE_CONNECTION_<LABEL> so that secrets stay out of files",
    ],
    "invalid-default-timeout-above-interval.yaml": [
        "5: timeout: timeout (10s) must be less than interval (5s) "
        "(no timeout is set, so the default applies: set a shorter timeout)",
    ],
    "invalid-duplicate-key.yaml": [
        "7: interval: duplicate key (first at line 5)",
    ],
    "invalid-duplicate-key-bad-value.yaml": [
        "5: kind: duplicate key (first at line 3)",
        f"5: kind: unknown kind 'mongo_lag' (installed kinds: {KINDS}), "
        "did you mean 'mongo_replication_lag'?",
    ],
    "invalid-empty.yaml": [
        "1: file: empty file: expected a context spec",
    ],
    "invalid-empty-front-matter.md": [
        "2: front matter: empty front matter",
    ],
    "invalid-interval-too-short.yaml": [
        "5: interval: must be at least 1s, got 500ms",
    ],
    "invalid-confirm-not-an-integer.yaml": [
        "5: confirm: Input should be a valid integer (got '3')",
    ],
    "invalid-confirm-too-many.yaml": [
        "4: confirm: Input should be less than or equal to 60 (got 61)",
    ],
    "invalid-confirm-zero.yaml": [
        "4: confirm: Input should be greater than or equal to 1 (got 0)",
    ],
    "invalid-missing-connection.md": [
        "2: connection: required field missing",
    ],
    "invalid-missing-kind.yaml": [
        f"1: kind: required field missing (installed kinds: {KINDS})",
    ],
    "invalid-missing-service-id.yaml": [
        "1: service_id: required field missing",
    ],
    "invalid-no-front-matter.md": [
        "1: front matter: a Markdown context must start with a '---' line opening its "
        "YAML front matter",
    ],
    "invalid-not-a-mapping.yaml": [
        "1: (root): expected a mapping of fields (key: value)",
    ],
    "invalid-not-utf8.yaml": [
        "5: file: not UTF-8 text (invalid continuation byte)",
    ],
    "invalid-reserved-id.yaml": [
        "2: service_id: 'metrics' is reserved: the service serves its own /metrics",
    ],
    "invalid-service-id-not-a-string.yaml": [
        "2: service_id: Input should be a valid string (got 2024)",
    ],
    "invalid-several-mistakes.yaml": [
        f"2: service_id: 'orders mongo lag' is not a valid service id: {ID_RULE}",
        "5: interval: must be at least 1s, got 500ms",
        "8: thresholds.red: red (1000) must be greater than yellow (5000)",
        f"9: owner: unknown field {ALLOWED}",
    ],
    "invalid-tab-indentation.yml": [
        "6: yaml: YAML syntax error: while scanning for the next token, "
        "found character '\\t' that cannot start any token (use spaces, not tabs)",
    ],
    "invalid-thresholds-negative.yaml": [
        "6: thresholds.yellow: Input should be greater than or equal to 0 (got -1)",
    ],
    "invalid-thresholds-not-a-mapping.yaml": [
        "5: thresholds: expected a mapping of fields (key: value), got 5000",
    ],
    "invalid-thresholds-not-a-number.yaml": [
        "6: thresholds.yellow: Input should be a valid number, "
        "unable to parse string as a number (got '5s')",
    ],
    "invalid-thresholds-order.yaml": [
        "7: thresholds.red: red (5000) must be greater than yellow (30000)",
    ],
    "invalid-thresholds-unknown-key.yaml": [
        "6: thresholds.green: unknown field (allowed: red, yellow)",
    ],
    "invalid-timeout-not-below-interval.yaml": [
        "6: timeout: timeout (30s) must be less than interval (30s)",
    ],
    "invalid-two-documents.yaml": [
        "6: yaml: more than one YAML document: one spec per file",
    ],
    "invalid-typo-kind.yaml": [
        f"3: kind: unknown kind 'mongo_replication_lagg' (installed kinds: {KINDS}), "
        "did you mean 'mongo_replication_lag'?",
    ],
    "invalid-unclosed-front-matter.md": [
        "1: front matter: unclosed front matter: no closing '---' line after the opening one",
    ],
    "invalid-unknown-key.yaml": [
        f"5: threshold: unknown field, did you mean 'thresholds'? {ALLOWED}",
    ],
    "invalid-yaml-syntax.yaml": [
        "6: yaml: YAML syntax error: while parsing a flow mapping started at line 5, "
        "expected ',' or '}', but got ':'",
    ],
    "invalid-zero-duration.yaml": [
        "5: timeout: must be a positive duration, got 0",
    ],
    # prometheus_query and alertmanager_alerts
    "invalid-prometheus-missing-thresholds.yaml": [
        "1: thresholds: required field missing",
    ],
    "invalid-prometheus-below-order.yaml": [
        "7: thresholds: red (0.2) must be less than yellow (0.05) with direction 'below' "
        "(smaller is worse)",
    ],
    "invalid-prometheus-line-placeholder.md": [
        "7: line: unknown placeholder '{value:.2%}': use {labels}, {value} or {<label name>}, "
        "without format specs, attributes or indexes",
    ],
    "invalid-prometheus-on-empty.yaml": [
        f"6: on_empty: {GRADES} (got 'ORANGE')",
        "7: max_lines: Input should be greater than or equal to 1 (got 0)",
    ],
    "invalid-prometheus-token-in-file.yaml": [
        "5: bearer_token_env: must name an environment variable that holds the token (letters, "
        "digits and '_', like PROMETHEUS_TOKEN), never the token itself",
    ],
    "invalid-alertmanager-matcher.yaml": [
        "6: matchers.1: 'severity: critical' is not a matcher: write name=\"value\", "
        'name!="value", name=~"regex" or name!~"regex"',
    ],
    "invalid-alertmanager-grades.yaml": [
        f"6: grades.info: {GRADES} (got 'BLUE')",
    ],
    "invalid-pipeline-hint-regex.yaml": [
        "10: hints.1.pattern: '(oom' is not a valid regular expression: missing ), "
        "unterminated subpattern at position 0",
    ],
    "invalid-pipeline-token-in-file.yaml": [
        "5: token_env: must name an environment variable that holds the token (letters, "
        "digits and '_', like GITHUB_TOKEN), never the token itself",
        "7: runs: Input should be greater than or equal to 1 (got 0)",
    ],
    "invalid-pipeline-wrong-target.yaml": [
        "1: project: required with provider gitlab",
        "5: repository: is for provider github; provider gitlab uses project",
    ],
    "invalid-alertmanager-unknown-key.yaml": [
        "4: include_silence: unknown field, did you mean 'include_silenced'? (allowed: "
        "bearer_token_env, confirm, connection, description, grades, group_by, include_inhibited, "
        "include_silenced, interval, kind, labels, matchers, max_lines, service_id, "
        "severity_label, timeout)",
    ],
}

# Every connection variable of the valid/ folder, named by hand from the labels.
VALID_ENV = {
    "ZEROPROBE_CONNECTION_ORDERSCLUSTER": "mongodb://orders-1:27017/?replicaSet=orders",
    "ZEROPROBE_CONNECTION_BILLING_DB_PROD": "mongodb://billing-1:27017/?replicaSet=billing",
    "ZEROPROBE_CONNECTION_INVENTORY": "mongodb://inventory-1:27017/?replicaSet=inventory",
}

INVENTORY_BODY = """\
# Inventory replication lag

**Goal.** Stock counts read from secondaries are never more than 10 seconds old.

**Runbook.**
1. Find the worst member in the document's lines.
2. `rs.printSecondaryReplicationInfo()` on the primary shows who lags and by how much."""


@pytest.fixture(autouse=True)
def in_contexts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in tests/testdata/contexts so that reported paths do not depend on the clone."""
    monkeypatch.chdir(CONTEXTS)


def expected_lines(name: str) -> list[str]:
    return [f"invalid/{name}:{line}" for line in INVALID[name]]


@pytest.mark.parametrize("name", sorted(INVALID), ids=sorted(INVALID))
def test_invalid_file_reports_its_mistakes(name: str) -> None:
    loaded, problems = load_file(Path("invalid", name), VALID_ENV)

    assert loaded is None
    assert [str(p) for p in problems] == expected_lines(name)
    assert all(p.severity == "error" for p in problems)


def test_every_invalid_file_has_an_expectation() -> None:
    on_disk = sorted(p.name for p in Path("invalid").iterdir())

    assert on_disk == sorted(INVALID)
    assert len(on_disk) >= 20


def test_one_run_reports_every_problem_of_every_invalid_file() -> None:
    report = load_contexts("invalid", {})

    assert report.specs == []
    assert not report.ok
    assert report.warnings == []
    assert sorted(str(p) for p in report.errors) == sorted(
        line for name in INVALID for line in expected_lines(name)
    )


def test_valid_folder_loads_every_spec_with_its_values() -> None:
    report = load_contexts("valid", VALID_ENV)

    assert [str(p) for p in report.problems] == []
    by_path = {c.path: c for c in report.specs}
    assert sorted(by_path) == ["valid/billing.yml", "valid/inventory.md", "valid/orders.yaml"]

    orders = by_path["valid/orders.yaml"]
    assert orders.line == 2
    assert orders.body == ""
    assert orders.spec.service_id == "orders.mongo.lag"
    assert orders.spec.kind == "mongo_replication_lag"
    assert orders.spec.description == "Replication lag of the orders replica set"
    assert orders.spec.interval_s == 90.0
    assert orders.spec.timeout_s == 0.5
    assert orders.spec.model_dump()["connection"] == "ordersCluster"
    assert orders.spec.model_dump()["thresholds"] == {"yellow": 2000, "red": 10000}

    billing = by_path["valid/billing.yml"]
    assert billing.line == 1
    assert billing.spec.service_id == "billing_mongo-lag"
    assert billing.spec.description == ""
    assert billing.spec.interval_s == 45.0
    assert billing.spec.timeout_s == 2.5
    assert billing.spec.model_dump()["thresholds"] == {"yellow": 5000, "red": 60000}

    inventory = by_path["valid/inventory.md"]
    assert inventory.line == 4
    assert inventory.spec.service_id == "Inventory.Mongo.Lag"
    assert inventory.spec.interval_s == 120.0
    assert inventory.spec.timeout_s == 10.0
    assert inventory.spec.model_dump()["thresholds"] == {"yellow": 10000, "red": 45000}


def test_markdown_body_is_kept_without_its_front_matter() -> None:
    loaded, problems = load_file(Path("valid", "inventory.md"), VALID_ENV)

    assert problems == []
    assert loaded is not None
    assert loaded.body == INVENTORY_BODY


def test_defaults_apply_when_durations_and_thresholds_are_left_out(tmp_path: Path) -> None:
    spec_file = tmp_path / "minimal.yaml"
    spec_file.write_text(
        "service_id: minimal\nkind: mongo_replication_lag\nconnection: rs\n", encoding="utf-8"
    )

    loaded, problems = load_file(spec_file, {"ZEROPROBE_CONNECTION_RS": "mongodb://h"})

    assert problems == []
    assert loaded is not None
    assert loaded.spec.interval_s == 60.0
    assert loaded.spec.timeout_s == 10.0
    assert loaded.spec.model_dump()["thresholds"] == {"yellow": 5000, "red": 30000}


def test_a_duplicate_service_id_points_at_the_first_definition() -> None:
    report = load_contexts("duplicate-ids", {})

    assert [str(p) for p in report.errors] == [
        "duplicate-ids/b-orders-copy.md:3: service_id: duplicate service id 'orders.mongo.lag' "
        "(also defined in duplicate-ids/a-orders.yaml:1)"
    ]
    assert [c.path for c in report.specs] == ["duplicate-ids/a-orders.yaml"]


def test_hidden_files_and_other_extensions_are_ignored(tmp_path: Path) -> None:
    good = "service_id: kept\nkind: mongo_replication_lag\nconnection: rs\n"
    (tmp_path / "kept.yaml").write_text(good, encoding="utf-8")
    (tmp_path / ".editor-swap.yaml").write_text("not: [valid", encoding="utf-8")
    (tmp_path / ".hidden.md").write_text("no front matter", encoding="utf-8")
    (tmp_path / "README.txt").write_text("not: [valid", encoding="utf-8")
    (tmp_path / "kept.yaml.orig").write_text("not: [valid", encoding="utf-8")
    (tmp_path / "notes.json").write_text("{", encoding="utf-8")
    (tmp_path / "..data").mkdir()  # how Kubernetes mounts a ConfigMap
    (tmp_path / "..data" / "copy.yaml").write_text(good, encoding="utf-8")

    report = load_contexts(tmp_path, {"ZEROPROBE_CONNECTION_RS": "mongodb://h"})

    assert [str(p) for p in report.problems] == []
    assert [c.path for c in report.specs] == [str(tmp_path / "kept.yaml")]


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"

    report = load_contexts(missing, {})

    assert [str(p) for p in report.errors] == [f"{missing}:0: contexts: no such directory"]
    assert report.specs == []


def test_an_empty_directory_is_only_a_warning(tmp_path: Path) -> None:
    report = load_contexts(tmp_path, {})

    assert report.ok
    assert report.specs == []
    assert [str(p) for p in report.warnings] == [
        f"{tmp_path}:0: contexts: warning: no context-spec files (*.yaml, *.yml, *.md)"
    ]


@pytest.mark.parametrize(
    "environ", [{}, dict.fromkeys(VALID_ENV, "")], ids=["unset", "set-but-empty"]
)
def test_an_unset_connection_variable_is_a_warning_not_an_error(
    environ: dict[str, str],
) -> None:
    report = load_contexts("valid", environ)

    assert report.ok
    assert len(report.specs) == 3
    assert [str(p) for p in report.warnings] == [
        "valid/billing.yml:3: connection: warning: ZEROPROBE_CONNECTION_BILLING_DB_PROD "
        "is not set: the probe will report RED until it is",
        "valid/inventory.md:6: connection: warning: ZEROPROBE_CONNECTION_INVENTORY "
        "is not set: the probe will report RED until it is",
        "valid/orders.yaml:5: connection: warning: ZEROPROBE_CONNECTION_ORDERSCLUSTER "
        "is not set: the probe will report RED until it is",
    ]


def test_a_trailing_document_separator_is_not_a_second_spec(tmp_path: Path) -> None:
    (tmp_path / "orders.yaml").write_text(
        "---\nservice_id: orders.lag\nkind: mongo_replication_lag\nconnection: orders\n---\n",
        encoding="utf-8",
    )
    report = load_contexts(tmp_path, {"ZEROPROBE_CONNECTION_ORDERS": "mongodb://x"})
    assert report.problems == []
    assert [c.spec.service_id for c in report.specs] == ["orders.lag"]


def test_windows_line_endings_load_and_leave_no_carriage_returns(tmp_path: Path) -> None:
    text = (
        "---\r\nservice_id: orders.lag\r\nkind: mongo_replication_lag\r\n"
        "connection: orders\r\ntimeout: nope\r\n---\r\n# Runbook\r\nStep 1\r\n"
    )
    (tmp_path / "orders.md").write_bytes(text.encode("utf-8"))
    report = load_contexts(tmp_path, {})
    expected = "expected a duration like '30s', '2m', '1m30s' or '500ms', got 'nope'"
    assert [str(p).split("/")[-1] for p in report.errors] == [f"orders.md:5: timeout: {expected}"]
    (tmp_path / "orders.md").write_bytes(text.replace("timeout: nope\r\n", "").encode())
    report = load_contexts(tmp_path, {})
    assert report.ok
    assert report.specs[0].body == "# Runbook\nStep 1"
