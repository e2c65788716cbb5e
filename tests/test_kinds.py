"""The kind registry: entry points of the group `zeroprobe.kinds`, plugins that cannot be used.

Each plugin here is a real distribution on disk (a `*.dist-info` folder with METADATA and
entry_points.txt beside its module), found by importlib.metadata exactly as pip's would be.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_cli_process import (
    LOCALHOST,
    Spawn,
    assert_document,
    clean_env,
    free_port,
    spawn,
    wait_for,
)
from zeroprobe.config.kinds import GROUP, KindRegistry, installed_kinds, load_kinds
from zeroprobe.config.loader import load_contexts
from zeroprobe.config.schema_export import context_spec_schema

__all__ = ["spawn"]  # the fixture, imported for the process tests below

GOOD = """
from typing import Literal
from zeroprobe.plugin import Grade, Kind, Line, ProbeContext, SpecBase

class {cls}(SpecBase):
    kind: Literal["{name}"]
    value: int

async def probe(spec: {cls}, ctx: ProbeContext) -> int:
    return spec.value

def grade(value: int, spec: {cls}) -> list[Line]:
    return [Line(f"- {name} value {{value}}", Grade.GREEN if value < 5 else Grade.RED)]

KIND = Kind(name="{name}", spec={cls}, probe=probe, grade=grade)
"""


@dataclass
class Site:
    """A folder of distributions, put on sys.path (and PYTHONPATH for child processes)."""

    path: Path

    def add(self, dist: str, module: str, source: str, entry_points: dict[str, str]) -> None:
        """A distribution `dist` 1.2.3 holding `module`.py and registering `entry_points`."""
        (self.path / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = self.path / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n", encoding="utf-8"
        )
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}", encoding="utf-8")

    def add_echo(self) -> None:
        """The example plugin: distribution zeroprobe-echo, kind echo."""
        self.add(
            "zeroprobe-echo",
            "plugin_echo",
            GOOD.format(cls="EchoSpec", name="echo"),
            {"echo": "plugin_echo:KIND"},
        )

    def registry(self) -> KindRegistry:
        """Every kind of the environment (this site is on sys.path), loaded as zeroprobe does."""
        return load_kinds()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    folder = tmp_path / "site"
    folder.mkdir()
    installed_kinds()  # the process-wide registry, loaded before this site is on the path
    monkeypatch.syspath_prepend(str(folder))
    yield Site(folder)
    for name in [m for m in sys.modules if m.startswith("plugin_")]:
        del sys.modules[name]


def spec_file(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_plugin_kind_loads_beside_the_built_in_ones(site: Site) -> None:
    site.add_echo()

    registry = site.registry()

    assert registry.problems == ()
    entry = registry.installed["echo"]
    assert (entry.distribution, entry.version, entry.target) == (
        "zeroprobe-echo",
        "1.2.3",
        "plugin_echo:KIND",
    )
    assert set(installed_kinds().names()) | {"echo"} == set(registry.names())


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        (
            "raise ImportError('No module named vendor_sdk')\n",
            "plugin_bad:KIND",
            "failed to load: ImportError: No module named vendor_sdk",
        ),
        ("KIND = 42\n", "plugin_bad:KIND", "is not usable: is a int, not a zeroprobe.plugin.Kind"),
        ("X = 1\n", "plugin_bad:KIND", "failed to load: AttributeError"),
        (
            """
            from pydantic import BaseModel
            from zeroprobe.plugin import Kind
            class NotASpec(BaseModel):
                kind: str = "bad"
            async def probe(spec, ctx): return 1
            def grade(value, spec): return []
            KIND = Kind(name="bad", spec=NotASpec, probe=probe, grade=grade)
            """,
            "plugin_bad:KIND",
            "is not usable: its spec model <class 'plugin_bad.NotASpec'> is not a subclass of "
            "zeroprobe.plugin.SpecBase",
        ),
        (
            GOOD.format(cls="BadSpec", name="other"),
            "plugin_bad:KIND",
            "is not usable: the entry point is named 'bad' but the Kind 'other'",
        ),
        (
            GOOD.format(cls="BadSpec", name="bad").replace(
                'kind: Literal["bad"]', 'kind: Literal["else"]'
            ),
            "plugin_bad:KIND",
            "is not usable: its spec model BadSpec must declare kind: Literal['bad'], "
            "not Literal['else']",
        ),
    ],
    ids=[
        "import-fails",
        "not-a-kind",
        "no-such-attribute",
        "model-not-a-specbase",
        "entry-point-name-differs",
        "literal-differs",
    ],
)
def test_an_unusable_plugin_is_one_line_naming_its_distribution(
    site: Site, tmp_path: Path, source: str, target: str, expected: str
) -> None:
    site.add("zeroprobe-bad", "plugin_bad", source, {"bad": target})
    site.add_echo()

    registry = site.registry()

    (problem,) = registry.problems
    assert problem.startswith(f"kind 'bad' of zeroprobe-bad 1.2.3 ({target}) ")
    assert expected in problem
    assert "\n" not in problem
    # The other kinds load, and a spec of the broken one says why it cannot run.
    assert {"echo", "mongo_replication_lag"} <= set(registry.names())
    folder = tmp_path / "contexts"
    spec_file(folder, "a.yaml", "service_id: a\nkind: echo\nvalue: 1\n")
    spec_file(folder, "b.yaml", "service_id: b\n\nkind: bad\n")
    report = load_contexts(folder, {}, registry)
    assert [cf.spec.service_id for cf in report.specs] == ["a"]
    (error,) = report.errors
    assert str(error).startswith(f"{folder / 'b.yaml'}:3: kind: {problem} (installed kinds: ")


def test_two_distributions_claiming_one_kind_are_both_refused(site: Site, tmp_path: Path) -> None:
    site.add_echo()
    site.add(
        "echo-fork",
        "plugin_fork",
        GOOD.format(cls="ForkSpec", name="echo"),
        {"echo": "plugin_fork:KIND"},
    )

    registry = site.registry()

    (problem,) = registry.problems
    assert problem == (
        "kind 'echo' is claimed by zeroprobe-echo 1.2.3 (plugin_echo:KIND) and echo-fork 1.2.3 "
        "(plugin_fork:KIND): neither is used; uninstall one of them"
    )
    assert "echo" not in registry.names()
    assert "mongo_replication_lag" in registry.names()
    report = load_contexts(
        spec_file(tmp_path / "c", "e.yaml", "service_id: e\nkind: echo\nvalue: 1\n").parent,
        {},
        registry,
    )
    assert "is claimed by zeroprobe-echo 1.2.3" in str(report.errors[0])


def test_a_plugin_spec_is_validated_by_its_own_model_with_lines(site: Site, tmp_path: Path) -> None:
    site.add_echo()
    folder = tmp_path / "contexts"
    spec_file(folder, "e.md", "---\nservice_id: e\nkind: echo\nvalue: many\nextra: 1\n---\nbody\n")

    report = load_contexts(folder, {}, site.registry())

    assert [str(p) for p in report.errors] == [
        f"{folder / 'e.md'}:4: value: Input should be a valid integer, unable to parse string "
        "as an integer (got 'many')",
        f"{folder / 'e.md'}:5: extra: unknown field (allowed: confirm, description, interval, "
        "kind, labels, service_id, timeout, value)",
    ]


def test_an_unknown_kind_names_the_installed_ones(tmp_path: Path) -> None:
    folder = tmp_path / "contexts"
    spec_file(folder, "x.yaml", "service_id: x\nkind: kafka_lag\n")

    (error,) = load_contexts(folder, {}).errors

    names = installed_kinds().names()
    assert str(error) == (
        f"{folder / 'x.yaml'}:2: kind: unknown kind 'kafka_lag' (installed kinds: "
        f"{', '.join(names)})"
    )
    assert "mongo_replication_lag" in names


def test_the_json_schema_has_every_installed_kind(site: Site) -> None:
    site.add_echo()

    schema = context_spec_schema(site.registry())

    assert set(schema["discriminator"]["mapping"]) == set(site.registry().names())
    assert schema["$defs"]["EchoSpec"]["properties"]["value"] == {
        "title": "Value",
        "type": "integer",
    }


# Processes: `zeroprobe kinds`, `check` and `serve` with a plugin on the path -------------------


def plugin_env(site: Site, **extra: str) -> dict[str, str]:
    return clean_env(PYTHONPATH=str(site.path), **extra)


def test_kinds_lists_each_kind_with_distribution_and_version(spawn: Spawn, site: Site) -> None:
    site.add_echo()

    proc = spawn("kinds", env=plugin_env(site))

    assert proc.finish() == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert rows[0] == ["KIND", "DISTRIBUTION", "VERSION", "ENTRY", "POINT"]
    assert ["echo", "zeroprobe-echo", "1.2.3", "plugin_echo:KIND"] in rows
    assert rows[[r[0] for r in rows].index("mongo_replication_lag")][:2] == [
        "mongo_replication_lag",
        "zeroprobe",
    ]
    assert proc.stderr == ""


def test_kinds_and_serve_name_a_broken_plugin_and_keep_the_others(
    spawn: Spawn, site: Site, tmp_path: Path
) -> None:
    site.add(
        "zeroprobe-bad", "plugin_bad", "raise RuntimeError('boom')\n", {"bad": "plugin_bad:KIND"}
    )
    site.add_echo()
    expected = (
        "kind 'bad' of zeroprobe-bad 1.2.3 (plugin_bad:KIND) failed to load: RuntimeError: boom"
    )

    kinds = spawn("kinds", env=plugin_env(site))
    assert kinds.finish() == 1
    assert kinds.stderr.splitlines() == [f"zeroprobe: {expected}"]
    assert "echo" in kinds.stdout

    folder = tmp_path / "contexts"
    spec_file(
        folder,
        "echo.yaml",
        "service_id: plugin.echo\nkind: echo\nvalue: 7\ninterval: 2s\ntimeout: 1s\n",
    )
    port = free_port()
    serve = spawn(
        "serve",
        "--contexts",
        str(folder),
        "--host",
        LOCALHOST,
        "--port",
        str(port),
        env=plugin_env(site),
    )
    raw, _ = wait_for(serve, port, "PUT", "/plugin.echo", timeout_s=20)
    status = assert_document(raw, "plugin.echo")
    assert (status["status"], status["messages"][0]["actionBody"]) == ("RED", "- echo value 7")
    code, _ = serve.stop()
    assert code == 0
    warnings = [line for line in serve.stderr.splitlines() if "zeroprobe-bad" in line]
    assert len(warnings) == 1 and warnings[0].endswith(f"WARNING zeroprobe.cli: {expected}")
    assert "Traceback" not in serve.stderr


def test_check_validates_a_plugin_spec_and_warns_of_a_broken_plugin(
    spawn: Spawn, site: Site, tmp_path: Path
) -> None:
    site.add("zeroprobe-bad", "plugin_bad", "KIND = None\n", {"bad": "plugin_bad:KIND"})
    site.add_echo()
    folder = tmp_path / "contexts"
    spec_file(folder, "ok.yaml", "service_id: ok\nkind: echo\nvalue: 1\n")

    good = spawn("check", str(folder), env=plugin_env(site))
    assert good.finish() == 0
    assert good.stdout.strip() == f"ok: 1 valid spec(s) in {folder}"
    assert good.stderr.splitlines() == [
        "warning: kind 'bad' of zeroprobe-bad 1.2.3 (plugin_bad:KIND) is not usable: is a "
        "NoneType, not a zeroprobe.plugin.Kind"
    ]

    spec_file(folder, "bad.yaml", "service_id: bad\nkind: echo\nvalue: [1]\n")
    bad = spawn("check", str(folder), env=plugin_env(site))
    assert bad.finish() == 1
    assert f"{folder / 'bad.yaml'}:3: value: Input should be a valid integer" in bad.stderr


# A plugin kind gets what a built-in kind gets ---------------------------------------------------

BEHAVING = """
import asyncio
import os
from typing import Literal
from zeroprobe.plugin import ConnectedSpec, Grade, Kind, KindMetric, Line, ProbeContext

class ToySpec(ConnectedSpec):
    kind: Literal["toy"]
    mode: Literal["ok", "hang", "leak", "crash"]

async def probe(spec: ToySpec, ctx: ProbeContext) -> int:
    uri = os.environ["ZEROPROBE_CONNECTION_" + spec.connection.upper()]
    if spec.mode == "hang":
        await asyncio.sleep(3600)
    if spec.mode == "leak":
        raise ConnectionError(f"cannot reach {uri}")
    if spec.mode == "crash":
        raise SystemExit(3)  # a plugin bug that would end a naive service
    return len(uri)

def grade(value: int, spec: ToySpec) -> list[Line]:
    return [Line(f"- toy measured {value}", Grade.GREEN)]

METRIC = KindMetric(name="zeroprobe_toy_value", documentation="The toy's value.", label="part")

def export(value: int, spec: ToySpec) -> dict[str, dict[str, float]]:
    return {METRIC.name: {"whole": float(value)}}

KIND = Kind(name="toy", spec=ToySpec, probe=probe, grade=grade, metrics=(METRIC,), export=export)
"""


def test_a_plugin_kind_runs_with_the_engine_s_timeout_isolation_redaction_and_metrics(
    spawn: Spawn, site: Site, tmp_path: Path
) -> None:
    site.add("zeroprobe-toy", "plugin_toy", BEHAVING, {"toy": "plugin_toy:KIND"})
    secret = "s3cr3t-Pa55word-zz"
    uri = f"https://toy:{secret}@toy.internal:8443/api"
    folder = tmp_path / "contexts"
    for mode in ("ok", "hang", "leak", "crash"):
        spec_file(
            folder,
            f"{mode}.yaml",
            f"service_id: toy.{mode}\nkind: toy\nconnection: toybox\nmode: {mode}\n"
            "interval: 3s\ntimeout: 1s\n",
        )
    port = free_port()
    proc = spawn(
        "serve",
        "--contexts",
        str(folder),
        "--host",
        LOCALHOST,
        "--port",
        str(port),
        env=plugin_env(site, ZEROPROBE_CONNECTION_TOYBOX=uri),
    )
    bodies = {}
    for mode in ("ok", "hang", "leak", "crash"):
        raw, _ = wait_for(proc, port, "PUT", f"/toy.{mode}", timeout_s=20)
        status = assert_document(raw, f"toy.{mode}")
        bodies[mode] = (status["status"], status["messages"][0]["actionBody"])
    metrics = wait_for(proc, port, "GET", "/metrics", timeout_s=5)[0].decode()
    page = wait_for(proc, port, "GET", "/", timeout_s=5)[0].decode()
    code, _ = proc.stop()

    assert bodies["ok"] == ("GREEN", f"- toy measured {len(uri)}")
    assert bodies["hang"] == ("RED", "- no answer within 1s (probe timeout)")
    assert bodies["leak"][0] == "RED" and "cannot reach" in bodies["leak"][1]
    assert bodies["crash"][0] == "RED" and "SystemExit" in bodies["crash"][1]
    assert 'zeroprobe_probe_status{kind="toy",service_id="toy.ok"} 0.0' in metrics
    assert 'zeroprobe_probe_status{kind="toy",service_id="toy.hang"} 2.0' in metrics
    assert f'zeroprobe_toy_value{{part="whole",service_id="toy.ok"}} {float(len(uri))}' in metrics
    assert 'zeroprobe_toy_value{part="whole",service_id="toy.leak"}' not in metrics
    assert all(f"toy.{mode}" in page for mode in ("ok", "hang", "leak", "crash"))
    assert code == 0
    for text in (*(body for _, body in bodies.values()), metrics, page, proc.stdout, proc.stderr):
        assert secret not in text
