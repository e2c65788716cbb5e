"""Problems of context-spec files (and of installed kinds), each located for the SRE."""

from __future__ import annotations

from collections.abc import Callable

from probes.errors import ZeroprobeError


class ContextSpecError(ZeroprobeError):
    """One or more context-spec files are invalid; `problems` lists every one."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SpecProblem:
    """One located problem of a context-spec file, printed as `path:line: field: message`."""

    __slots__ = ("field", "line", "message", "path", "severity")

    def __init__(
        self, path: str, line: int, field: str, message: str, severity: str = "error"
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        self.severity = severity

    def redacted(self, redact: Callable[[str], str]) -> SpecProblem:
        """The same problem with its message scrubbed of credentials."""
        return SpecProblem(self.path, self.line, self.field, redact(self.message), self.severity)

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.path}:{self.line}: {self.field}: {prefix}{self.message}"

    def __repr__(self) -> str:
        return f"SpecProblem({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpecProblem) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class Problems:
    """Errors and warnings of a report that holds `problems` (the specs, the notifiers file)."""

    __slots__ = ()
    problems: list[SpecProblem]

    @property
    def errors(self) -> list[SpecProblem]:
        """Problems that make the set unusable."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[SpecProblem]:
        """Problems worth saying that do not stop the service."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when no error was found."""
        return not self.errors
