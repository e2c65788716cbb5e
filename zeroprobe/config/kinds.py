"""The installed probe kinds: every `Kind` registered under the entry-point group
`zeroprobe.kinds`, the built-in ones included (zeroprobe's own pyproject.toml registers them).

Loading never stops the service: a plugin that fails to import, that is not a `Kind`, whose
model is not a `SpecBase`, or whose name another distribution claims too, becomes one line
naming its distribution, and the other kinds load. A spec of such a kind is an error of that
spec's file alone.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from probes.base import RESERVED_METRIC_LABELS, Kind
from schemas.context_spec import SpecBase

#: The entry-point group a distribution registers its kinds under.
GROUP = "zeroprobe.kinds"


@dataclass(frozen=True, slots=True)
class InstalledKind:
    """A kind and where it came from."""

    kind: Kind[Any, Any]
    distribution: str
    version: str
    #: `module:attribute`, as the entry point names it.
    target: str


@dataclass(frozen=True, slots=True)
class KindRegistry:
    """The kinds that loaded, and one line for each plugin that did not."""

    installed: Mapping[str, InstalledKind] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    #: Kind names that exist but cannot be used, with the reason (two claims of one name).
    unavailable: Mapping[str, str] = field(default_factory=dict)

    @property
    def kinds(self) -> dict[str, Kind[Any, Any]]:
        """Name -> kind, what the engine runs."""
        return {name: entry.kind for name, entry in self.installed.items()}

    def names(self) -> list[str]:
        """Every usable kind name, sorted."""
        return sorted(self.installed)

    def spec_type(self, kind: str) -> type[SpecBase] | None:
        """The spec model of `kind`, or None when no usable kind has that name."""
        entry = self.installed.get(kind)
        return entry.kind.spec if entry is not None else None

    def spec_types(self) -> list[type[SpecBase]]:
        """Every usable kind's spec model, in kind-name order."""
        return [self.installed[name].kind.spec for name in self.names()]


def spec_kind(spec_type: type[SpecBase]) -> str | None:
    """The one `kind:` value a spec model accepts (its `Literal`), or None when it has none."""
    field_info = spec_type.model_fields.get("kind")
    if field_info is None or typing.get_origin(field_info.annotation) is not typing.Literal:
        return None
    values = typing.get_args(field_info.annotation)
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


def _where(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    if dist is None:
        return "an unknown distribution", ""
    name = dist.metadata["Name"] or dist.name
    return name, dist.version or ""


def _check(entry_point: metadata.EntryPoint, loaded: object) -> str | None:
    """Why `loaded` cannot be used as the kind `entry_point` names, or None."""
    if not isinstance(loaded, Kind):
        return f"is a {type(loaded).__name__}, not a zeroprobe.plugin.Kind"
    if not (isinstance(loaded.spec, type) and issubclass(loaded.spec, SpecBase)):
        return f"its spec model {loaded.spec!r} is not a subclass of zeroprobe.plugin.SpecBase"
    accepted = spec_kind(loaded.spec)
    if accepted != loaded.name:
        return (
            f"its spec model {loaded.spec.__name__} must declare kind: Literal[{loaded.name!r}]"
            + (f", not Literal[{accepted!r}]" if accepted else "")
        )
    if entry_point.name != loaded.name:
        return f"the entry point is named {entry_point.name!r} but the Kind {loaded.name!r}"
    if not callable(loaded.probe) or not callable(loaded.grade):
        return "its probe and grade must be functions"
    for metric in loaded.metrics:
        if not metric.name.startswith("zeroprobe_") or metric.label in RESERVED_METRIC_LABELS:
            return (
                f"its metric {metric.name!r} must start with zeroprobe_ and may not use the "
                f"label {metric.label!r}"
            )
    return None


def load_kinds(entry_points: Iterable[metadata.EntryPoint] | None = None) -> KindRegistry:
    """Load every kind of the group (or of `entry_points`, for tests), never raising."""
    if entry_points is None:
        entry_points = metadata.entry_points(group=GROUP)
    claims: dict[str, list[InstalledKind]] = {}
    problems: list[str] = []
    # Kind name -> why it cannot be used, so that a spec of that kind says so.
    unavailable: dict[str, str] = {}
    for entry_point in sorted(entry_points, key=lambda ep: (ep.name, ep.value)):
        distribution, version = _where(entry_point)
        origin = f"{distribution} {version}".strip()
        try:
            loaded = entry_point.load()
        except Exception as exc:  # a plugin's bug must not stop the other kinds
            why = (
                f"kind {entry_point.name!r} of {origin} ({entry_point.value}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            )
            problems.append(why)
            unavailable[entry_point.name] = why
            continue
        reason = _check(entry_point, loaded)
        if reason is not None:
            why = (
                f"kind {entry_point.name!r} of {origin} ({entry_point.value}) is not usable: "
                + reason
            )
            problems.append(why)
            unavailable[entry_point.name] = why
            continue
        kind = typing.cast(Kind[Any, Any], loaded)
        claims.setdefault(kind.name, []).append(
            InstalledKind(kind, distribution, version, entry_point.value)
        )
    installed: dict[str, InstalledKind] = {}
    for name, entries in claims.items():
        if len(entries) == 1:
            installed[name] = entries[0]
            continue
        who = " and ".join(f"{e.distribution} {e.version} ({e.target})" for e in entries)
        why = f"kind {name!r} is claimed by {who}: neither is used; uninstall one of them"
        problems.append(why)
        unavailable[name] = why
    for name in installed:
        unavailable.pop(name, None)  # a broken second entry of a name that did load
    return KindRegistry(installed, tuple(problems), unavailable)


@functools.cache
def installed_kinds() -> KindRegistry:
    """The kinds of this environment, loaded once per process."""
    return load_kinds()
