"""The notifiers file: where colour changes go (Alertmanager, webhooks, chat), validated with
every problem located as `path:line: field: message`, like the spec files.

Secrets (webhook URLs, chat tokens) are never in the file: a sink names the environment
variable (`url_env`) or the file (`url_file`, a mounted Secret) that holds its URL. The URLs
are resolved here, when the file is loaded (at start and on each reload).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.context_spec import ENV_VAR_PATTERN, Duration
from zeroprobe.config.loader import parse_yaml, validation_problems, yaml_problem
from zeroprobe.config.problems import Problems, SpecProblem

SINK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
SINK_TYPES = ("webhook", "slack", "discord", "apprise")
DEFAULT_RESEND_INTERVAL_S = 60.0
DEFAULT_COALESCE_S = 10.0
DEFAULT_MAX_AGE_S = 3600.0
DEFAULT_SEND_TIMEOUT_S = 10.0
_SECRET_IN_FILE = (
    "a URL is a secret: name the environment variable that holds it (url_env) or a file "
    "(url_file), never the URL itself"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertmanagerConfig(_Strict):
    """Every firing probe is pushed to each of these Alertmanagers (never load-balanced)."""

    urls: list[str] = Field(min_length=1, description="Base URLs: http://alertmanager-0:9093")
    resend_interval: Duration = Field(
        default=DEFAULT_RESEND_INTERVAL_S,
        description="How often firing alerts are pushed again (Prometheus' resend-delay).",
    )
    timeout: Duration = Field(default=DEFAULT_SEND_TIMEOUT_S, description="Per push.")

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http(s) base URL")
            if parts.username or parts.password:
                raise ValueError("no user:password@ in the file: credentials are secrets")
        if len(set(urls)) != len(urls):
            raise ValueError("a URL is listed twice")
        return urls


class SinkConfig(_Strict):
    """One direct receiver of notifications (a team's webhook or chat channel)."""

    name: str = Field(pattern=SINK_NAME_PATTERN, max_length=100)
    type: Literal["webhook", "slack", "discord", "apprise"]
    url_env: str | None = Field(default=None, pattern=ENV_VAR_PATTERN)
    url_file: str | None = None
    url: str | None = Field(default=None, description="Not allowed: use url_env or url_file.")
    min_status: Literal["YELLOW", "RED"] = "YELLOW"
    match: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    timeout: Duration = Field(default=DEFAULT_SEND_TIMEOUT_S, description="Per request.")

    @field_validator("url")
    @classmethod
    def _no_url(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(_SECRET_IN_FILE)
        return value

    @field_validator("match")
    @classmethod
    def _check_globs(cls, globs: list[str]) -> list[str]:
        for glob in globs:
            if not glob.strip():
                raise ValueError("an empty pattern matches nothing")
        return globs

    @model_validator(mode="after")
    def _one_source(self) -> SinkConfig:
        if self.url is None and (self.url_env is None) == (self.url_file is None):
            raise ValueError("set exactly one of url_env and url_file")
        return self


class NotifiersConfig(_Strict):
    """The whole notifiers file."""

    alertmanager: AlertmanagerConfig | None = None
    sinks: list[SinkConfig] = Field(default_factory=list)
    coalesce: Duration = Field(
        default=DEFAULT_COALESCE_S,
        description="Transitions within this window after the first are one message per sink.",
    )
    max_age: Duration = Field(
        default=DEFAULT_MAX_AGE_S,
        description="A message not delivered within this time is dropped (and counted).",
    )

    @field_validator("sinks")
    @classmethod
    def _unique_names(cls, sinks: list[SinkConfig]) -> list[SinkConfig]:
        seen: set[str] = set()
        for sink in sinks:
            if sink.name in seen:
                raise ValueError(f"two sinks are named {sink.name!r}")
            seen.add(sink.name)
        return sinks


@dataclass(frozen=True, slots=True)
class SinkTarget:
    """A sink with its URL resolved (None, with `missing` saying why, when not available)."""

    config: SinkConfig
    url: str | None = field(default=None, repr=False)
    missing: str = ""


@dataclass(frozen=True, slots=True)
class Notifiers:
    """A valid notifiers file, its sinks' URLs resolved. `secrets` are for the redactor."""

    config: NotifiersConfig
    path: str
    sinks: tuple[SinkTarget, ...]

    @property
    def secrets(self) -> list[str]:
        """Every resolved URL: each is a secret everywhere (page, API, logs, metrics)."""
        return [sink.url for sink in self.sinks if sink.url]


@dataclass(slots=True)
class NotifiersReport(Problems):
    """What loading the notifiers file found: the notifiers (None on any error) and problems
    (a warning: a sink's URL not set yet)."""

    notifiers: Notifiers | None = None
    problems: list[SpecProblem] = field(default_factory=list)


def load_notifiers(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> NotifiersReport:
    """Load and validate the notifiers file at `path` (None: no notifications, no problem)."""
    if path is None:
        return NotifiersReport()
    name = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        return _failed(SpecProblem(name, line, "file", f"not UTF-8 text ({exc.reason})"))
    except OSError as exc:
        return _failed(SpecProblem(name, 0, "file", f"cannot read: {exc.strerror}"))
    try:
        data, lines, problems = parse_yaml(text, name, 0)
    except yaml.YAMLError as exc:
        return _failed(yaml_problem(exc, name, 0))
    if problems:
        return NotifiersReport(problems=sorted(problems, key=lambda p: p.line))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return _failed(SpecProblem(name, 1, "(root)", "expected a mapping (alertmanager, sinks)"))
    try:
        config = NotifiersConfig.model_validate(data)
    except ValidationError as exc:
        found = validation_problems(exc, NotifiersConfig, name, lines, 1)
        return NotifiersReport(problems=sorted(found, key=lambda p: p.line))
    targets: list[SinkTarget] = []
    for index, sink in enumerate(config.sinks):
        target, problem = _resolve(sink, Path(name).parent, environ)
        if problem is not None:
            source = "url_env" if sink.url_env is not None else "url_file"
            line = lines.get(("sinks", index, source), lines.get(("sinks", index), 1))
            severity = "error" if target is None else "warning"
            problems.append(SpecProblem(name, line, f"sinks.{index}.{source}", problem, severity))
        targets.append(target or SinkTarget(sink))
    if any(p.severity == "error" for p in problems):
        return NotifiersReport(problems=problems)
    return NotifiersReport(Notifiers(config, name, tuple(targets)), problems)


def _failed(problem: SpecProblem) -> NotifiersReport:
    return NotifiersReport(problems=[problem])


def _resolve(
    sink: SinkConfig, folder: Path, environ: Mapping[str, str]
) -> tuple[SinkTarget | None, str | None]:
    """The sink with its URL, and a problem: a warning when the URL is not available (yet), an
    error (no target) when it is there but unusable. Never quotes the URL."""
    if sink.url_env is not None:
        url = environ.get(sink.url_env, "").strip()
        where = sink.url_env
        if not url:
            missing = f"{where} is not set: messages to {sink.name} wait until it is"
            return SinkTarget(sink, None, missing), missing
    else:
        assert sink.url_file is not None
        file = Path(sink.url_file)
        where = str(file)
        try:
            url = (file if file.is_absolute() else folder / file).read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            missing = f"cannot read {where} ({reason}): messages to {sink.name} wait until it can"
            return SinkTarget(sink, None, missing), missing
        if not url:
            missing = f"{where} is empty: messages to {sink.name} wait until it holds the URL"
            return SinkTarget(sink, None, missing), missing
    problem = _url_problem(sink.type, url)
    if problem is not None:
        return None, f"the URL in {where} {problem}"
    return SinkTarget(sink, url), None


def _apprise_accepts(url: str) -> bool:
    """Whether Apprise can make a notifier of `url` (its scheme known, its fields valid), so a
    mistyped URL is named at load time rather than at the first message hours later."""
    # Imported here: it loads the plugin of every service it knows (0.3 s), only needed when an
    # apprise sink is configured.
    import apprise  # noqa: PLC0415

    # Apprise logs why it refuses a URL, quoting parts of it: the URL is a secret, and the
    # problem line says what is wrong.
    apprise_log = logging.getLogger("apprise")
    level = apprise_log.level
    apprise_log.setLevel(logging.CRITICAL + 1)
    try:
        return apprise.Apprise.instantiate(url, suppress_exceptions=True) is not None
    finally:
        apprise_log.setLevel(level)


def _url_problem(sink_type: str, url: str) -> str | None:
    if sink_type == "apprise":
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$", url):
            return "is not an Apprise URL (scheme://...)"
        if not _apprise_accepts(url):
            scheme = url.split("://", 1)[0]
            return f"is not a URL Apprise can use (a {scheme}:// URL it cannot parse)"
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"is not an http(s) URL (a {sink_type} sink posts to one)"
    return None
