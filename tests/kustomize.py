"""What `kubectl kustomize FOLDER` builds, for the few features deploy/'s kustomizations use,
so that the manifest tests build the StatefulSet overlay on machines without kubectl or
kustomize (`make test` installs neither). Where one of them is installed, a test checks that
both builds agree. A feature this module does not know fails loudly instead of being built
wrongly: resources (files, and folders with a kustomization.yaml), `labels` (pairs added to
each resource's metadata.labels, as kustomize does without includeSelectors/includeTemplates),
`images` (newTag) and strategic-merge patches that delete a resource (`$patch: delete`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

KNOWN_FIELDS = frozenset({"apiVersion", "kind", "labels", "resources", "patches", "images"})
#: Kinds whose pod template holds the containers the `images` entries rewrite.
WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})


class UnsupportedError(ValueError):
    """The kustomization uses a feature this module does not build."""


def identity(resource: Resource) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name): how a patch finds its target."""
    metadata = resource.get("metadata") or {}
    return (
        str(resource.get("apiVersion", "")),
        str(resource.get("kind", "")),
        str(metadata.get("namespace", "")),
        str(metadata.get("name", "")),
    )


def load_all(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def build(folder: Path) -> list[Resource]:
    """The resources `kubectl kustomize folder` outputs (in no particular order)."""
    kustomization: dict[str, Any] = yaml.safe_load(
        (folder / "kustomization.yaml").read_text(encoding="utf-8")
    )
    unknown = kustomization.keys() - KNOWN_FIELDS
    if unknown:
        raise UnsupportedError(f"{folder}: {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        resources += build(path) if path.is_dir() else load_all(path)
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise UnsupportedError(f"{folder}: a patch other than a file: {patch}")
        for doc in load_all(folder / patch["path"]):
            if doc.get("$patch") != "delete":
                raise UnsupportedError(f"{patch['path']}: only `$patch: delete` is built")
            matching = [r for r in resources if identity(r) == identity(doc)]
            if len(matching) != 1:
                raise ValueError(f"{patch['path']} matches {len(matching)} resources")
            resources.remove(matching[0])
    for image in kustomization.get("images", []):
        if set(image) != {"name", "newTag"}:
            raise UnsupportedError(f"{folder}: images entry {image}")
        for resource in resources:
            for container in containers(resource):
                if image_name(container["image"]) == image["name"]:
                    container["image"] = f"{image['name']}:{image['newTag']}"
    for label in kustomization.get("labels", []):
        if set(label) != {"pairs"}:
            raise UnsupportedError(f"{folder}: labels entry {label}")
        for resource in resources:
            resource.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    return resources


def containers(resource: Resource) -> list[dict[str, Any]]:
    """The containers (init containers included) of a workload's pod template, or a Pod's."""
    if resource.get("kind") == "Pod":
        pod = resource.get("spec", {})
    elif resource.get("kind") in WORKLOADS:
        pod = resource.get("spec", {}).get("template", {}).get("spec", {})
    else:
        return []
    found: list[dict[str, Any]] = pod.get("initContainers", []) + pod.get("containers", [])
    return found


def image_name(image: str) -> str:
    """`registry:5000/name:tag@digest` -> `registry:5000/name`."""
    image = image.split("@", 1)[0]
    head, _, tail = image.rpartition("/")
    return f"{head}/{tail.split(':', 1)[0]}" if head else tail.split(":", 1)[0]
