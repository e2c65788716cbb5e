"""The layer contracts of `make check` (import-linter) fail on a wrong import, naming the rule.

The packages are copied to a temporary folder, one wrong import is added, and `lint-imports`
runs there with the repository's own contracts (pyproject.toml).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TESTS

REPO = TESTS.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = {
    "zeroprobe": REPO / "zeroprobe",
    "probes": REPO / "probes",
    "schemas": REPO / "schemas",
    "zeroprobe_http": REPO / "plugins" / "zeroprobe-http" / "zeroprobe_http",
}


def lint_with(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on a copy of the packages where `module` also has `line`."""
    for name, source in PACKAGES.items():
        shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    # The copy, not the editable install, is what grimp must find first.
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


INSIDE = "Inside zeroprobe: cli -> demo -> web -> notify -> engine -> config"


@pytest.mark.parametrize(
    ("module", "line", "rule", "chain"),
    [
        (
            "schemas.grading",
            "import zeroprobe.engine.store",
            "Layers: zeroprobe (engine, HTTP, CLI) -> probes (kinds) -> schemas (contracts)",
            "schemas.grading -> zeroprobe.engine.store",
        ),
        (
            "probes.lines",
            "from zeroprobe.config import settings",
            "Layers: zeroprobe (engine, HTTP, CLI) -> probes (kinds) -> schemas (contracts)",
            "probes.lines -> zeroprobe.config.settings",
        ),
        (
            "zeroprobe.engine.store",
            "from zeroprobe.web import markup",
            INSIDE,
            "zeroprobe.engine.store -> zeroprobe.web.markup",
        ),
        (
            "zeroprobe.engine.runner",
            "from zeroprobe.notify import notifier",
            INSIDE,
            "zeroprobe.engine.runner -> zeroprobe.notify.notifier",
        ),
        (
            "probes.prometheus_query",
            "from probes import mongo_replication_lag",
            "A kind knows no other kind (each could be its own distribution)",
            "probes.prometheus_query -> probes.mongo_replication_lag",
        ),
        (
            "zeroprobe_http.kind",
            "from probes import http_client",
            "The HTTP endpoint plugin imports zeroprobe.plugin only, as any plugin must",
            "zeroprobe_http.kind -> probes.http_client",
        ),
    ],
    ids=[
        "schemas-imports-engine",
        "probes-imports-config",
        "engine-imports-web",
        "engine-imports-notify",
        "kind-imports-kind",
        "plugin-imports-internals",
    ],
)
def test_a_wrong_import_fails_naming_the_rule(
    tmp_path: Path, module: str, line: str, rule: str, chain: str
) -> None:
    result = lint_with(tmp_path, module, line)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{rule} BROKEN" in result.stdout
    assert chain in result.stdout
    assert " 0 broken" not in result.stdout


def test_the_copy_itself_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_with(tmp_path, "schemas.grading", "# no import added")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
