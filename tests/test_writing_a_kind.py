"""docs/writing-a-kind.md, followed as a newcomer would.

The page's files (`<!-- file: PATH -->` before a code block) are written to a folder, the
example plugin is installed with pip into a fresh virtual environment beside zeroprobe (built
from this repository, with its runtime dependencies only), and the page's commands run there:
`zeroprobe kinds`, `zeroprobe check` (valid, then a bad value named with its line), and
`zeroprobe serve` answering `PUT /demo.echo`, then turning RED when the spec changes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli_process import (
    LOCALHOST,
    Proc,
    Spawn,
    assert_document,
    clean_env,
    free_port,
    request,
    spawn,
    wait_for,
)

__all__ = ["spawn"]  # the fixture

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "writing-a-kind.md"
FILE_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```[a-z]*\n(.*?)\n```", re.DOTALL)
SERVICE_ID = "demo.echo"


def page_files() -> dict[str, str]:
    """Path -> text of every file the page asks the reader to write."""
    return {path: text + "\n" for path, text in FILE_BLOCK.findall(PAGE.read_text("utf-8"))}


def page_line(prefix: str) -> str:
    """The line of the page that starts with `prefix` (an example of output)."""
    (line,) = [x for x in PAGE.read_text("utf-8").splitlines() if x.startswith(prefix)]
    return line


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_the_page_names_the_files_of_the_walk_through() -> None:
    files = page_files()

    assert sorted(files) == [
        "contexts/demo.echo.md",
        "echo-kind/echo_kind.py",
        "echo-kind/pyproject.toml",
    ]
    # The plugin is the example of the issue, imports from zeroprobe.plugin only.
    imports = re.findall(r"^(?:from|import) (\S+)", files["echo-kind/echo_kind.py"], re.M)
    assert imports == ["typing", "zeroprobe.plugin"]


@pytest.mark.timeout(420)
def test_the_walk_through_works_in_a_fresh_virtual_environment(
    tmp_path: Path, spawn: Spawn
) -> None:
    work = tmp_path / "work"
    for path, text in page_files().items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text, encoding="utf-8")

    # zeroprobe from this repository's sources (what its wheel is built from), in a fresh venv.
    source = tmp_path / "zeroprobe-src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("zeroprobe", "probes", "schemas"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = clean_env()
    env.pop("PYTHONPATH", None)
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    made = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    pip = (sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-compile")
    for project in (source, work / "echo-kind"):  # the page's `pip install ./echo-kind`
        installed = run(*pip, project, cwd=work, env=env)
        assert installed.returncode == 0, installed.stderr
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    zeroprobe = venv / "bin" / "zeroprobe"

    kinds = run(zeroprobe, "kinds", cwd=work, env=env)
    assert (kinds.returncode, kinds.stderr) == (0, "")
    rows = kinds.stdout.splitlines()
    assert rows[0] == page_line("KIND  ")
    assert page_line("echo  ") in rows
    assert page_line("mongo_replication_lag ") in rows

    checked = run(zeroprobe, "check", "contexts", cwd=work, env=env)
    assert (checked.returncode, checked.stdout) == (0, page_line("ok: 1 valid") + "\n")

    spec = work / "contexts" / f"{SERVICE_ID}.md"
    original = spec.read_text(encoding="utf-8")
    spec.write_text(original.replace("value: 3", "value: three"), encoding="utf-8")
    bad = run(zeroprobe, "check", "contexts", cwd=work, env=env)
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        page_line("contexts/demo.echo.md:4: value:"),
        page_line("1 error(s) in 1 file(s)"),
    ]

    spec.write_text(original, encoding="utf-8")
    port = free_port()
    proc: Proc = spawn(
        "serve",
        "--contexts",
        "contexts",
        "--host",
        LOCALHOST,
        "--port",
        str(port),
        env=env,
        cwd=work,
        executable=zeroprobe,
    )
    raw, _ = wait_for(proc, port, "PUT", f"/{SERVICE_ID}", timeout_s=30)
    status = assert_document(raw, SERVICE_ID)
    assert (status["status"], status["messages"][0]["actionBody"]) == ("GREEN", "- value 3")

    # "Write `value: 7`, and the reload turns it RED."
    spec.write_text(original.replace("value: 3", "value: 7"), encoding="utf-8")
    raw = wait_until_red(proc, port)
    assert assert_document(raw, SERVICE_ID)["messages"][0]["actionBody"] == "- value 7"
    code, _ = proc.stop()
    assert code == 0
    assert "Traceback" not in proc.stderr


def wait_until_red(proc: Proc, port: int) -> bytes:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, _, body = request(port, "PUT", f"/{SERVICE_ID}")
        if json.loads(body)[SERVICE_ID]["status"] == "RED":
            return body
        time.sleep(0.2)
    pytest.fail(f"never turned RED:\n{proc.stderr}")
