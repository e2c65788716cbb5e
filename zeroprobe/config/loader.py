"""Loading and validating context-spec files, reporting every problem with file, line and field."""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from schemas.context_spec import (
    ConnectedSpec,
    SpecBase,
    compact,
    connection_env_var,
)
from zeroprobe.config.kinds import KindRegistry, installed_kinds
from zeroprobe.config.problems import Problems, SpecProblem

SPEC_SUFFIXES = (".yaml", ".yml", ".md")
_FRONT_MATTER_FENCE = "---"

# A path of keys inside the YAML document, e.g. ("thresholds", "yellow").
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ContextFile:
    """A validated spec with where it came from and its human context (the Markdown body)."""

    spec: SpecBase
    path: str
    line: int
    body: str = ""


@dataclass(slots=True)
class LoadReport(Problems):
    """What loading a folder found: valid specs, errors and warnings."""

    specs: list[ContextFile] = field(default_factory=list)
    problems: list[SpecProblem] = field(default_factory=list)


def spec_files(directory: Path) -> list[Path]:
    """Spec files of `directory`, sorted by name; hidden files (Kubernetes' ..data) skipped."""
    # os.scandir and plain names: Path objects, their ordering and a stat per file cost a
    # tenth of start-up with 10,000 specs. Same order as sorting the paths: one folder.
    with os.scandir(directory) as entries:
        names = sorted(
            entry.name
            for entry in entries
            if not entry.name.startswith(".")
            and os.path.splitext(entry.name)[1].lower() in SPEC_SUFFIXES
            and _is_file(entry)
        )
    return [directory / name for name in names]


def _is_file(entry: os.DirEntry[str]) -> bool:
    """A regular file, or a link to one (a ConfigMap's files are links into ..data)."""
    try:
        return entry.is_file()
    except OSError:
        return False


def load_contexts(
    directory: str | os.PathLike[str],
    environ: Mapping[str, str],
    kinds: KindRegistry | None = None,
) -> LoadReport:
    """Load every spec file of `directory`, collecting all problems of all files.

    Each spec is validated by the model of its kind among `kinds` (default: the installed
    ones, plugins included).
    """
    kinds = installed_kinds() if kinds is None else kinds
    report = LoadReport()
    folder = Path(directory)
    if not folder.is_dir():
        report.problems.append(SpecProblem(str(folder), 0, "contexts", "no such directory"))
        return report
    files = spec_files(folder)
    if not files:
        report.problems.append(
            SpecProblem(
                str(folder),
                0,
                "contexts",
                "no context-spec files (*.yaml, *.yml, *.md)",
                severity="warning",
            )
        )
    first_seen: dict[str, ContextFile] = {}
    for path in files:
        loaded, problems = load_file(path, environ, kinds)
        report.problems.extend(problems)
        if loaded is None:
            continue
        earlier = first_seen.get(loaded.spec.service_id)
        if earlier is not None:
            report.problems.append(
                SpecProblem(
                    loaded.path,
                    loaded.line,
                    "service_id",
                    f"duplicate service id {loaded.spec.service_id!r} "
                    f"(also defined in {earlier.path}:{earlier.line})",
                )
            )
            continue
        first_seen[loaded.spec.service_id] = loaded
        report.specs.append(loaded)
    _RESOLVED.clear()  # it served this folder; its service ids need not stay in memory
    return report


def load_file(
    path: Path, environ: Mapping[str, str], kinds: KindRegistry | None = None
) -> tuple[ContextFile | None, list[SpecProblem]]:
    """Load one file: the spec if it is valid, and every problem found in it."""
    kinds = installed_kinds() if kinds is None else kinds
    name = str(path)
    try:
        text = _read(name).decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        return None, [SpecProblem(name, line, "file", f"not UTF-8 text ({exc.reason})")]
    except OSError as exc:
        return None, [SpecProblem(name, 0, "file", f"cannot read: {exc.strerror}")]
    if not text.strip():
        return None, [SpecProblem(name, 1, "file", "empty file: expected a context spec")]

    body = ""
    line_offset = 0
    if path.suffix.lower() == ".md":
        split = _split_front_matter(text)
        if isinstance(split, SpecProblem):
            split.path = name
            return None, [split]
        text, body, line_offset = split
        if not text.strip():
            return None, [SpecProblem(name, 2, "front matter", "empty front matter")]

    try:
        data, lines, problems = parse_yaml(text, name, line_offset)
    except yaml.YAMLError as exc:
        return None, [yaml_problem(exc, name, line_offset)]
    if data is None and problems:
        return None, problems
    root_line = line_offset + 1
    if not isinstance(data, dict):
        return None, [
            SpecProblem(name, root_line, "(root)", "expected a mapping of fields (key: value)")
        ]

    kind = data.get("kind")
    spec_type = kinds.spec_type(kind) if isinstance(kind, str) else None
    if spec_type is None:
        names = kinds.names()
        installed = ", ".join(names) or "none"
        if "kind" not in data:
            message = f"required field missing (installed kinds: {installed})"
        elif isinstance(kind, str) and kind in kinds.unavailable:
            message = f"{kinds.unavailable[kind]} (installed kinds: {installed})"
        else:
            message = (
                f"unknown kind {kind!r} (installed kinds: {installed})"
                f"{_did_you_mean(str(kind), names)}"
            )
        problems.append(SpecProblem(name, lines.get(("kind",), root_line), "kind", message))
        return None, _by_line(problems)

    try:
        spec = compact(spec_type.model_validate(data))
    except ValidationError as exc:
        problems.extend(validation_problems(exc, spec_type, name, lines, root_line))
        return None, _by_line(problems)
    if problems:
        return None, _by_line(problems)

    line = lines.get(("service_id",), root_line)
    warnings = _connection_warnings(spec, name, lines, environ)
    return ContextFile(spec=spec, path=name, line=line, body=body.strip("\n")), warnings


def _read(name: str) -> bytes:
    """The bytes of a file: plain system calls, no buffered file object (a tenth of reading
    10,000 small specs)."""
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _by_line(problems: list[SpecProblem]) -> list[SpecProblem]:
    return sorted(problems, key=lambda p: p.line)


def _split_front_matter(text: str) -> tuple[str, str, int] | SpecProblem:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != _FRONT_MATTER_FENCE:
        return SpecProblem(
            "",
            1,
            "front matter",
            "a Markdown context must start with a '---' line opening its YAML front matter",
        )
    for index in range(1, len(lines)):
        if lines[index].rstrip() in (_FRONT_MATTER_FENCE, "..."):
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), 1
    return SpecProblem(
        "", 1, "front matter", "unclosed front matter: no closing '---' line after the opening one"
    )


_C_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: The tag of each plain scalar (and of each mapping, sequence) seen, by what decides it.
_RESOLVED: dict[tuple[Any, Any, Any], str] = {}
_RESOLVED_MAX = 4096


class _FastLoader(_C_LOADER):  # type: ignore[misc]
    """libyaml's parser (when PyYAML has it) with PyYAML's tag resolution remembered.

    Resolving a plain scalar's tag (str, int, bool, null, ...) runs a few regexes in Python
    for every key and value; 10,000 specs repeat the same keys and many values. The safe
    loader has no path resolvers, so the tag depends on the node kind, value and implicit
    flags only.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        key = (kind, value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            # Short values only: keys and the values specs share, not descriptions.
            if len(_RESOLVED) < _RESOLVED_MAX and (value is None or len(value) <= 64):
                _RESOLVED[key] = tag
        return tag


_FAST_LOADER: Any = _FastLoader


def parse_yaml(
    text: str, name: str, line_offset: int
) -> tuple[Any, dict[KeyPath, int], list[SpecProblem]]:
    """Parse one YAML document; return its data, the line of every key, and duplicate keys.

    Shared by the spec files and the notifiers file (zeroprobe/config/notifiers.py)."""
    try:
        # libyaml when PyYAML has it: ~10x faster, which counts with thousands of specs.
        nodes, data = _compose_and_construct(text)
    except yaml.YAMLError:
        # The pure-Python parser again, for its error messages and marks.
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        data = next(iter(yaml.safe_load_all(text)), None)
    # A trailing '---' (an empty last document) is harmless: only real documents count.
    nodes = [node for index, node in enumerate(nodes) if index == 0 or not _empty(node)]
    if len(nodes) > 1:
        second = nodes[1]
        line = second.start_mark.line + 1 + line_offset if second is not None else 1
        return (
            None,
            {},
            [SpecProblem(name, line, "yaml", "more than one YAML document: one spec per file")],
        )
    lines: dict[KeyPath, int] = {}
    problems: list[SpecProblem] = []
    if nodes and nodes[0] is not None:
        _index_lines(nodes[0], (), lines, problems, name=name, offset=line_offset)
    return data, lines, problems


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


def _compose_and_construct(text: str) -> tuple[list[yaml.Node], Any]:
    """Every document's node, and the first document's data, in one parse.

    Start-up with 10,000 specs used to parse each file twice (nodes for the lines, data for
    the model) and build the data with PyYAML's generic constructor: together half of it.
    """
    loader = _FAST_LOADER(text)
    try:
        nodes: list[yaml.Node] = []
        while loader.check_node():
            nodes.append(loader.get_node())
        data = _construct(nodes[0], loader) if nodes else None
    finally:
        loader.dispose()
    return nodes, data


def _construct(node: yaml.Node, loader: Any) -> Any:
    """`node` as Python data, exactly as the safe constructor builds it.

    Plain strings, string-keyed mappings and sequences (all a spec holds) are built here;
    anything else (numbers, booleans, dates, merge keys `<<`, explicit tags) goes to
    PyYAML's own constructor, and so do its errors.
    """
    if node.tag == _STR and type(node) is yaml.ScalarNode:
        return node.value
    if node.tag == _MAP and type(node) is yaml.MappingNode:
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag != _STR or type(key_node) is not yaml.ScalarNode:
                return loader.construct_object(node, deep=True)
            # A duplicate key: the last value wins, as with the constructor.
            mapping[key_node.value] = _construct(value_node, loader)
        return mapping
    if node.tag == _SEQ and type(node) is yaml.SequenceNode:
        return [_construct(item, loader) for item in node.value]
    return loader.construct_object(node, deep=True)


def _empty(node: yaml.Node | None) -> bool:
    return node is None or (
        isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null") and not node.value
    )


def _index_lines(
    node: yaml.Node,
    path: KeyPath,
    lines: dict[KeyPath, int],
    problems: list[SpecProblem],
    *,
    name: str,
    offset: int,
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1 + offset
            if key in seen:
                dotted = ".".join(str(p) for p in (*path, key))
                problems.append(
                    SpecProblem(name, line, dotted, f"duplicate key (first at line {seen[key]})")
                )
                # The YAML loader keeps the last value: locate its problems here, not at the first.
                prefix = (*path, key)
                for stale in [k for k in lines if k[: len(prefix)] == prefix]:
                    del lines[stale]
            else:
                seen[key] = line
            lines[(*path, key)] = line
            _index_lines(value_node, (*path, key), lines, problems, name=name, offset=offset)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1 + offset
            _index_lines(item, (*path, index), lines, problems, name=name, offset=offset)


def yaml_problem(exc: yaml.YAMLError, name: str, line_offset: int) -> SpecProblem:
    """A YAML syntax error as a located problem."""
    line = line_offset + 1
    message = str(exc)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            line = mark.line + 1 + line_offset
        context = exc.context
        if context and exc.context_mark is not None:
            # The mistake is often where the construct began, lines before the parser noticed.
            context_line = exc.context_mark.line + 1 + line_offset
            if context_line != line:
                context = f"{context} started at line {context_line}"
        parts = [p for p in (context, exc.problem) if p]
        message = ", ".join(parts) if parts else message
        if exc.problem and "'\\t'" in exc.problem:
            message += " (use spaces, not tabs)"
    return SpecProblem(name, line, "yaml", f"YAML syntax error: {message}")


def validation_problems(
    exc: ValidationError,
    spec_type: type[BaseModel],
    name: str,
    lines: dict[KeyPath, int],
    root_line: int,
) -> list[SpecProblem]:
    """Every validation error of `spec_type` (any pydantic model) located in the file."""
    problems: list[SpecProblem] = []
    for error in exc.errors(include_url=False):
        loc: KeyPath = tuple(error["loc"])
        dotted = ".".join(str(p) for p in loc) or "(root)"
        line = _line_for(loc, lines, root_line)
        default_timeout = loc == ("timeout",) and loc not in lines
        if default_timeout:
            # The default timeout clashes with a short interval: point at the interval.
            line = lines.get(("interval",), line)
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_fields(spec_type, loc[:-1])
            hint = _did_you_mean(str(loc[-1]), allowed)
            message = f"unknown field{hint} (allowed: {', '.join(allowed)})"
        elif kind == "missing":
            message = "required field missing"
        elif kind == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
            if default_timeout:
                message += " (no timeout is set, so the default applies: set a shorter timeout)"
        elif kind in ("model_type", "dict_type"):
            message = f"expected a mapping of fields (key: value), got {error['input']!r}"
        else:
            message = f"{error['msg']} (got {error['input']!r})"
        problems.append(SpecProblem(name, line, dotted, message))
    return problems


def _line_for(loc: KeyPath, lines: dict[KeyPath, int], root_line: int) -> int:
    """The line of the deepest key of `loc` present in the file (a missing key: its parent)."""
    for end in range(len(loc), 0, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return root_line


def _allowed_fields(spec_type: type[BaseModel], parent: KeyPath) -> list[str]:
    model: Any = spec_type
    for key in parent:
        if isinstance(key, int):  # an item of a list: the list's item type
            args = typing.get_args(model)
            model = args[0] if args else None
            continue
        info = getattr(model, "model_fields", {}).get(key)
        if info is None:
            return []
        model = info.annotation
        # An optional section (`Model | None`): the model's fields.
        if typing.get_origin(model) in (typing.Union, types.UnionType):
            model = next((a for a in typing.get_args(model) if hasattr(a, "model_fields")), model)
    return sorted(getattr(model, "model_fields", {}))


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f", did you mean {close[0]!r}?" if close else ""


def _connection_warnings(
    spec: SpecBase, name: str, lines: dict[KeyPath, int], environ: Mapping[str, str]
) -> list[SpecProblem]:
    if not isinstance(spec, ConnectedSpec):
        return []
    # The variables a spec names: its connection, and a bearer token (HTTP kinds). Read from
    # the fields, not getattr: a field a model lacks costs pydantic an exception.
    named = [("connection", connection_env_var(spec.connection))]
    fields = spec.__dict__
    token_variable = fields.get("bearer_token_env")
    if isinstance(token_variable, str):
        named.append(("bearer_token_env", token_variable))
    pipeline_token = fields.get("token_env")
    if isinstance(pipeline_token, str):
        named.append(("token_env", pipeline_token))
    return [
        SpecProblem(
            name,
            lines.get((field_name,), 1),
            field_name,
            f"{variable} is not set: the probe will report RED until it is",
            severity="warning",
        )
        for field_name, variable in named
        if not environ.get(variable)
    ]
