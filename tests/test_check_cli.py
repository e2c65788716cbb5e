"""`zeroprobe check`: every problem of every file on stderr, exit 1 on any error."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.conftest import TESTDATA
from zeroprobe.cli import main

CONTEXTS = TESTDATA / "contexts"
INVALID_NAMES = sorted(p.name for p in (CONTEXTS / "invalid").iterdir())
VALID_ENV = {
    "ZEROPROBE_CONNECTION_ORDERSCLUSTER": "mongodb://orders-1:27017/?replicaSet=orders",
    "ZEROPROBE_CONNECTION_BILLING_DB_PROD": "mongodb://billing-1:27017/?replicaSet=billing",
    "ZEROPROBE_CONNECTION_INVENTORY": "mongodb://inventory-1:27017/?replicaSet=inventory",
}


@pytest.fixture(autouse=True)
def in_contexts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in tests/testdata/contexts; undo the root-logger set-up `main` does."""
    monkeypatch.chdir(CONTEXTS)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def check(capsys: pytest.CaptureFixture[str], *args: str, environ: Mapping[str, str]) -> int:
    capsys.readouterr()  # start from empty captures
    return main(["check", *args], environ=environ)


def test_invalid_folder_fails_and_names_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    code = check(capsys, "invalid", environ={})
    out, err = capsys.readouterr()

    assert code == 1
    assert out == ""
    lines = err.splitlines()
    for name in INVALID_NAMES:
        assert any(line.startswith(f"invalid/{name}:") for line in lines), name
    assert lines[-1].endswith(f"error(s) in {len(INVALID_NAMES)} file(s); 0 valid spec(s)")
    # Every line but the summary is a located problem: path:line: field: message.
    assert all(line.startswith("invalid/invalid-") for line in lines[:-1])


def test_several_mistakes_of_one_file_are_all_printed(capsys: pytest.CaptureFixture[str]) -> None:
    check(capsys, "invalid", environ={})
    err = capsys.readouterr().err

    several = [line for line in err.splitlines() if "invalid-several-mistakes.yaml" in line]
    assert [line.split(": ")[0:2] for line in several] == [
        ["invalid/invalid-several-mistakes.yaml:2", "service_id"],
        ["invalid/invalid-several-mistakes.yaml:5", "interval"],
        ["invalid/invalid-several-mistakes.yaml:8", "thresholds.red"],
        ["invalid/invalid-several-mistakes.yaml:9", "owner"],
    ]


def test_valid_folder_with_connections_set_passes_quietly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = check(capsys, "valid", environ=VALID_ENV)
    out, err = capsys.readouterr()

    assert code == 0
    assert err == ""
    assert out == "ok: 3 valid spec(s) in valid\n"


def test_valid_folder_without_connections_passes_with_warnings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = check(capsys, "valid", environ={})
    out, err = capsys.readouterr()

    assert code == 0
    assert out == "ok: 3 valid spec(s) in valid\n"
    assert err.splitlines() == [
        "valid/billing.yml:3: connection: warning: ZEROPROBE_CONNECTION_BILLING_DB_PROD "
        "is not set: the probe will report RED until it is",
        "valid/inventory.md:6: connection: warning: ZEROPROBE_CONNECTION_INVENTORY "
        "is not set: the probe will report RED until it is",
        "valid/orders.yaml:5: connection: warning: ZEROPROBE_CONNECTION_ORDERSCLUSTER "
        "is not set: the probe will report RED until it is",
    ]


def test_folder_defaults_to_zeroprobe_contexts(capsys: pytest.CaptureFixture[str]) -> None:
    code = check(capsys, environ={**VALID_ENV, "ZEROPROBE_CONTEXTS": "valid"})

    assert code == 0
    assert capsys.readouterr().out == "ok: 3 valid spec(s) in valid\n"


def test_duplicate_service_ids_fail(capsys: pytest.CaptureFixture[str]) -> None:
    code = check(capsys, "duplicate-ids", environ={})
    err = capsys.readouterr().err

    assert code == 1
    assert (
        "duplicate-ids/b-orders-copy.md:3: service_id: duplicate service id 'orders.mongo.lag' "
        "(also defined in duplicate-ids/a-orders.yaml:1)\n"
    ) in err


def test_missing_folder_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code = check(capsys, "no-such-folder", environ={})

    assert code == 1
    assert "no-such-folder:0: contexts: no such directory\n" in capsys.readouterr().err


def test_installed_command_exits_1_without_a_traceback() -> None:
    command = Path(sys.executable).with_name("zeroprobe")
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "zeroprobe"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ZEROPROBE_")}

    result = subprocess.run(
        [*argv, "check", "invalid"],
        cwd=CONTEXTS,
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for name in INVALID_NAMES:
        assert f"invalid/{name}:" in result.stderr, name
