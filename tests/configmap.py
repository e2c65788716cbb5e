"""Renders deploy/kubernetes/configmap.yaml from the example contexts (`make configmap`).

tests/test_packaging.py fails when the file and contexts/ differ, so the two never drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from zeroprobe.config.loader import spec_files

REPO = Path(__file__).resolve().parents[1]
CONTEXTS = REPO / "contexts"
CONFIGMAP = REPO / "deploy" / "kubernetes" / "configmap.yaml"
NAME = "zeroprobe-contexts"

HEADER = (
    "# Generated from contexts/ by `make configmap`: edit the files there, then regenerate.\n"
    "# Mounted at /etc/zeroprobe/contexts; zeroprobe reloads it when the kubelet updates it.\n"
)


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks (`|`), so the specs read as they do in contexts/."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str)


def context_files(folder: Path = CONTEXTS) -> dict[str, str]:
    """Every spec file zeroprobe would load from `folder`, by name."""
    return {path.name: path.read_text(encoding="utf-8") for path in spec_files(folder)}


def render(folder: Path = CONTEXTS) -> str:
    """The ConfigMap manifest holding every spec file of `folder`."""
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": NAME, "labels": {"app.kubernetes.io/name": "zeroprobe"}},
        "data": context_files(folder),
    }
    body = yaml.dump(
        manifest, Dumper=_LiteralDumper, sort_keys=False, allow_unicode=True, width=1000
    )
    return HEADER + body


if __name__ == "__main__":
    CONFIGMAP.write_text(render(), encoding="utf-8")
    print(f"wrote {CONFIGMAP.relative_to(REPO)}")
