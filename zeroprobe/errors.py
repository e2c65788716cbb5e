"""The one exception family of zeroprobe. Library errors are mapped to these at the boundary."""

from __future__ import annotations

from collections.abc import Callable


class ZeroprobeError(Exception):
    """Base of every error zeroprobe raises on purpose."""


class ProbeError(ZeroprobeError):
    """A probe could not measure. The message is a plain-English line for the on-call engineer.

    `reached_target` says whether the target answered at all (an error reply counts): the
    /liveness contract fails while a Mongo-backed probe cannot reach its server.
    """

    reached_target = False


class ProbeTimeoutError(ProbeError):
    """The target did not answer within the probe's timeout."""


class ProbeConnectionError(ProbeError):
    """The target could not be reached: refused, unresolvable, lost mid-reply, not selected."""


class ProbeReplyError(ProbeError):
    """The target answered, but with an error or a reply we cannot read."""

    reached_target = True


class ProbeConfigError(ProbeError):
    """The probe's own configuration is unusable at run time (unset or invalid connection)."""


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
