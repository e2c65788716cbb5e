"""Context-spec models: the fields an SRE writes in `contexts/*.yaml|*.md`."""

from __future__ import annotations

import re
import sys
import weakref
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import WithJsonSchema

from schemas.durations import format_duration, parse_duration_s
from schemas.grading import Grade, Thresholds
from schemas.line_template import parse_template

SERVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
SERVICE_ID_MAX_LENGTH = 200
CONNECTION_LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
LABEL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# name, operator, then a "quoted" value (with \" escapes) or a bare one without quotes.
MATCHER_PATTERN = r'^\s*[A-Za-z_][A-Za-z0-9_]*\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^"]*)\s*$'
DEFAULT_QUERY_LINE = "- {labels} {value}"
#: Labels zeroprobe sets on every alert it pushes to Alertmanager: a spec's `labels` cannot.
ALERT_LABELS = frozenset({"alertname", "service_id", "severity", "kind"})

#: Paths the service itself serves; a probe with one of these ids could never be reached.
RESERVED_SERVICE_IDS = frozenset(
    {
        "liveness",
        "livez",
        "readyz",
        "healthz",
        "metrics",
        "api",
        "ui",
        "static",
        "openapi.json",
        "favicon.ico",
        "robots.txt",
        "-",
        "index.html",
    }
)

Duration = Annotated[
    float,
    BeforeValidator(parse_duration_s),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+(\.\d+)?|(\d+(\.\d+)?(ms|s|m|h))+)$"},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "A duration: '30s', '2m', '1m30s', '500ms', or a number of seconds.",
        }
    ),
]


def connection_env_var(label: str) -> str:
    """The environment variable holding the connection string of `label`."""
    return "ZEROPROBE_CONNECTION_" + re.sub(r"[^A-Za-z0-9]", "_", label).upper()


#: Most runs `confirm` may ask for: the history keeps 60 runs, so a longer wait could not be
#: followed on the status page.
CONFIRM_MAX = 60


def compact(model: M) -> M:
    """`model` with what equal specs hold in common shared, to keep 10,000 specs small.

    Validation gives every instance its own `__pydantic_fields_set__` (a set: 216-728
    bytes) and every nested model (e.g. default thresholds) its own copy. Frozen models
    never change those, so equal ones are shared: the field-name sets by content, nested
    models through a weak table (an entry goes when no spec uses it), and the short
    strings many specs repeat (kind, connection label) are interned.
    """
    values = model.__dict__
    for name, value in values.items():
        if isinstance(value, BaseModel) and value.model_config.get("frozen"):
            values[name] = _shared_model(compact(value))
        elif type(value) is str and name in _INTERNED_FIELDS:
            values[name] = sys.intern(value)
    names = frozenset(model.__pydantic_fields_set__)
    object.__setattr__(model, "__pydantic_fields_set__", _FIELD_SETS.setdefault(names, set(names)))
    return model


def _shared_model(model: BaseModel) -> BaseModel:
    try:
        key = (type(model), frozenset(model.__pydantic_fields_set__), *model.__dict__.items())
        hash(key)
    except TypeError:  # a field holds a list or dict: keep this copy
        return model
    return _MODELS.setdefault(key, model)


M = TypeVar("M", bound=BaseModel)
_INTERNED_FIELDS = frozenset({"kind", "connection", "provider"})
_FIELD_SETS: dict[frozenset[str], set[str]] = {}
_MODELS: weakref.WeakValueDictionary[tuple[object, ...], BaseModel] = weakref.WeakValueDictionary()


class SpecBase(BaseModel):
    """Fields every context spec has, whatever its kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_id: str = Field(
        description="The id the monitoring system calls: PUT /<service_id>.",
        max_length=SERVICE_ID_MAX_LENGTH,
    )
    kind: str
    interval: Duration = Field(
        default=60.0, validate_default=True, description="How often the probe runs."
    )
    timeout: Duration = Field(
        default=10.0, validate_default=True, description="Longest one run may take; < interval."
    )
    description: str = Field(default="", description="One line for people.")
    confirm: int = Field(
        default=1,
        ge=1,
        le=CONFIRM_MAX,
        strict=True,
        description="Flap damping: a colour change is published only once this many "
        "consecutive runs agree on it (1: at once). Until then the published colour stays "
        "and a line says the change is pending.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels added to this probe's alerts in Alertmanager (e.g. team: "
        "payments), for routing and silences. Names as Prometheus label names; not "
        f"{', '.join(sorted(ALERT_LABELS))}, which zeroprobe sets itself.",
    )

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(LABEL_NAME_PATTERN, name) or name.startswith("__"):
                raise ValueError(
                    f"{name!r} is not a label name: letters, digits and '_', not starting "
                    "with a digit or '__'"
                )
            if name in ALERT_LABELS:
                raise ValueError(f"label {name!r} is set by zeroprobe itself")
        return value

    @field_validator("service_id")
    @classmethod
    def _check_service_id(cls, value: str) -> str:
        if not re.match(SERVICE_ID_PATTERN, value):
            raise ValueError(
                f"{value!r} is not a valid service id: use letters, digits, '.', '_' and '-', "
                "starting with a letter or digit"
            )
        if value.lower() in RESERVED_SERVICE_IDS:
            raise ValueError(f"{value!r} is reserved: the service serves its own /{value}")
        return value

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, value: float) -> float:
        if value < 1:
            raise ValueError(f"must be at least 1s, got {format_duration(value)}")
        return value

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and value >= interval:
            raise ValueError(
                f"timeout ({format_duration(value)}) must be less than "
                f"interval ({format_duration(interval)})"
            )
        return value

    @property
    def interval_s(self) -> float:
        """The interval in seconds."""
        return self.interval

    @property
    def timeout_s(self) -> float:
        """The timeout in seconds."""
        return self.timeout


class ConnectedSpec(SpecBase):
    """Fields of the kinds that reach a target through a connection label."""

    connection: str = Field(
        description="A label, never a URI: the connection string is read from "
        "ZEROPROBE_CONNECTION_<LABEL> (label upper-cased, other characters '_'). A MongoDB "
        "URI, or an HTTP base URL such as http://prometheus:9090 whose user:password@ "
        "becomes basic auth.",
        pattern=CONNECTION_LABEL_PATTERN,
    )

    @field_validator("connection", mode="before")
    @classmethod
    def _no_uri(cls, value: Any) -> Any:
        return check_connection_label(value)


class LagThresholds(BaseModel):
    """Replication-lag bands in milliseconds: GREEN < yellow <= YELLOW < red <= RED."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    yellow: float = Field(default=5000, ge=0, allow_inf_nan=False, description="ms")
    red: float = Field(
        default=30000, ge=0, allow_inf_nan=False, validate_default=True, description="ms"
    )

    @field_validator("red")
    @classmethod
    def _check_order(cls, value: float, info: ValidationInfo) -> float:
        yellow = info.data.get("yellow")
        if yellow is not None and yellow >= value:
            raise ValueError(f"red ({value:g}) must be greater than yellow ({yellow:g})")
        return value

    def bands(self) -> Thresholds:
        """The bands as the grading function takes them."""
        return Thresholds(yellow=self.yellow, red=self.red)


class OplogWindowThresholds(BaseModel):
    """How much of the primary's oplog window a secondary may be behind, as shares of the
    window: GREEN < yellow <= YELLOW < red <= RED (0.5: half the window used)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    read: bool = Field(
        default=True,
        description="Read the oplog window on the primary (needs read on the local database); "
        "false: no oplog line.",
    )
    yellow: float = Field(
        default=0.5, gt=0, le=1, allow_inf_nan=False, description="share of the window used"
    )
    red: float = Field(
        default=0.75,
        gt=0,
        le=1,
        allow_inf_nan=False,
        validate_default=True,
        description="share of the window used",
    )

    @field_validator("red")
    @classmethod
    def _check_order(cls, value: float, info: ValidationInfo) -> float:
        yellow = info.data.get("yellow")
        if yellow is not None and yellow >= value:
            raise ValueError(f"red ({value:g}) must be greater than yellow ({yellow:g})")
        return value

    def bands(self) -> Thresholds:
        """The bands on the share of the window used."""
        return Thresholds(yellow=self.yellow, red=self.red)


def _check_shard_connections(value: dict[str, str]) -> dict[str, str]:
    for shard, label in value.items():
        if not shard.strip():
            raise ValueError("a shard name must not be empty")
        check_connection_label(label)
    return value


class MongoReplicationLagSpec(ConnectedSpec):
    """Replication lag of every member of a MongoDB replica set, in milliseconds; through a
    mongos, of every shard's replica set (and the config servers')."""

    kind: Literal["mongo_replication_lag"]
    thresholds: LagThresholds = Field(default_factory=LagThresholds)
    oplog: OplogWindowThresholds = Field(
        default_factory=OplogWindowThresholds,
        description="Headroom of each secondary in the primary's oplog window (window - lag), "
        "graded on the share of the window its lag uses.",
    )
    election_window: Duration = Field(
        default=600.0,
        validate_default=True,
        description="How long a change of primary or of term stays a YELLOW line.",
    )
    shard_connections: Annotated[dict[str, str], AfterValidator(_check_shard_connections)] = Field(
        default_factory=dict,
        description="Sharded clusters: shard name -> connection label whose URI's user, "
        "password and options reach that shard (shard-local users). Other shards use "
        "the credentials of `connection`.",
    )
    config_servers: bool = Field(
        default=True,
        description="Sharded clusters: also measure the config server replica set.",
    )


def check_connection_label(value: Any) -> Any:
    """A connection is a label, never a URI: secrets stay in the environment, out of files."""
    if isinstance(value, str) and "://" in value:
        raise ValueError(
            "must be a label, not a URI: put the URI in the environment variable "
            "ZEROPROBE_CONNECTION_<LABEL> so that secrets stay out of files"
        )
    if isinstance(value, str) and not re.match(CONNECTION_LABEL_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a valid connection label: use letters, digits, '.', '_' "
            "and '-', starting with a letter or digit"
        )
    return value


def check_token_env(value: Any, *, example: str) -> Any:
    """A token field names the variable holding the token; the token itself never goes in a
    file (and the message does not quote what was written)."""
    if isinstance(value, str) and not re.match(ENV_VAR_PATTERN, value):
        raise ValueError(
            "must name an environment variable that holds the token (letters, digits "
            f"and '_', like {example}), never the token itself"
        )
    return value


def _grade_name(value: Any) -> Any:
    """Colours may be written in any case: `red` is RED."""
    if isinstance(value, str) and value.strip().upper() in Grade.__members__:
        return value.strip().upper()
    return value


#: GREEN, YELLOW or RED, in any case.
GradeName = Annotated[Grade, BeforeValidator(_grade_name)]


def _check_label_name(value: str) -> str:
    if not re.match(LABEL_NAME_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a label name: use letters, digits and '_', not starting with a digit"
        )
    return value


#: A Prometheus / Alertmanager label name.
LabelName = Annotated[
    str,
    AfterValidator(_check_label_name),
    WithJsonSchema({"type": "string", "pattern": LABEL_NAME_PATTERN}),
]


class HttpSpecBase(ConnectedSpec):
    """Fields of the kinds that talk HTTP to a base URL (Prometheus, Alertmanager)."""

    bearer_token_env: str | None = Field(
        default=None,
        description="Name of an environment variable holding a bearer token, sent as "
        "'Authorization: Bearer <token>'. The token itself never goes in a file.",
        pattern=ENV_VAR_PATTERN,
    )

    @field_validator("bearer_token_env", mode="before")
    @classmethod
    def _env_name(cls, value: Any) -> Any:
        return check_token_env(value, example="PROMETHEUS_TOKEN")


class QueryThresholds(BaseModel):
    """Bands in the query's own unit; their order depends on the spec's `direction`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    yellow: float = Field(allow_inf_nan=False, description="Where YELLOW starts.")
    red: float = Field(allow_inf_nan=False, description="Where RED starts.")

    def bands(self) -> Thresholds:
        """The bands as the grading functions take them."""
        return Thresholds(yellow=self.yellow, red=self.red)


class PrometheusQuerySpec(HttpSpecBase):
    """A PromQL instant query; every series (or the scalar) graded against thresholds.

    `direction: above` (bigger is worse): GREEN below yellow, YELLOW from yellow, RED from red
    (yellow < red). `direction: below` (smaller is worse, e.g. free disk): RED at or below red,
    YELLOW at or below yellow, GREEN above it (yellow > red).
    """

    kind: Literal["prometheus_query"]
    query: str = Field(
        description="PromQL, run as an instant query (/api/v1/query).",
        json_schema_extra={"minLength": 1},
    )
    direction: Literal["above", "below"] = Field(
        default="above",
        description="above: bigger is worse; below: smaller is worse (free disk, replicas up).",
    )
    thresholds: QueryThresholds = Field(
        description="{yellow, red} in the query's unit. above: yellow < red; below: yellow > red."
    )
    line: str = Field(
        default=DEFAULT_QUERY_LINE,
        description="Template of each series' line: {labels}, {value} and {<label name>}; "
        "'{{' and '}}' are literal braces.",
    )
    on_empty: GradeName = Field(
        default=Grade.YELLOW, description="Grade when the query returns no series."
    )
    max_lines: int = Field(
        default=20, ge=1, le=1000, description="Most series lines shown, worst first."
    )

    @field_validator("query")
    @classmethod
    def _query_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty: write a PromQL expression")
        return value

    @field_validator("thresholds")
    @classmethod
    def _check_order(cls, value: QueryThresholds, info: ValidationInfo) -> QueryThresholds:
        direction = info.data.get("direction")
        yellow, red = value.yellow, value.red
        if direction == "above" and not yellow < red:
            raise ValueError(
                f"red ({red:g}) must be greater than yellow ({yellow:g}) with direction "
                "'above' (bigger is worse); for smaller-is-worse set direction: below"
            )
        if direction == "below" and not yellow > red:
            raise ValueError(
                f"red ({red:g}) must be less than yellow ({yellow:g}) with direction "
                "'below' (smaller is worse)"
            )
        return value

    @field_validator("line")
    @classmethod
    def _check_line(cls, value: str) -> str:
        parse_template(value)
        if "\n" in value or "\r" in value:
            raise ValueError("must be one line")
        return value


def _check_matcher(value: str) -> str:
    if not re.match(MATCHER_PATTERN, value):
        raise ValueError(
            f'{value!r} is not a matcher: write name="value", name!="value", '
            'name=~"regex" or name!~"regex"'
        )
    return value


#: An Alertmanager matcher: `service="payments"`, `severity=~"critical|warning"`.
Matcher = Annotated[
    str,
    AfterValidator(_check_matcher),
    WithJsonSchema({"type": "string", "pattern": MATCHER_PATTERN}),
]


def _default_alert_grades() -> dict[str, Grade]:
    return {"critical": Grade.RED, "warning": Grade.YELLOW}


class AlertmanagerAlertsSpec(HttpSpecBase):
    """The active alerts of an Alertmanager that match, one line per alert group.

    A group's colour comes from its severity label through `grades` (case-insensitive);
    a severity `grades` does not name is YELLOW. No active alert is GREEN.
    """

    kind: Literal["alertmanager_alerts"]
    matchers: list[Matcher] = Field(
        default_factory=list,
        description='Sent as `filter` to /api/v2/alerts, e.g. service="payments", '
        'severity=~"critical|warning". None: every alert.',
    )
    severity_label: LabelName = Field(
        default="severity", description="The label that holds an alert's severity."
    )
    grades: dict[str, GradeName] = Field(
        default_factory=_default_alert_grades,
        description="Severity value -> colour; replaces the default {critical: RED, "
        "warning: YELLOW}. Any other severity is YELLOW.",
    )
    group_by: list[LabelName] = Field(
        default_factory=lambda: ["alertname", "service"],
        min_length=1,
        description="Labels whose values (with the severity) make one alert group = one line.",
    )
    include_silenced: bool = Field(default=False, description="Also grade silenced alerts.")
    include_inhibited: bool = Field(default=False, description="Also grade inhibited alerts.")
    max_lines: int = Field(default=20, ge=1, le=1000, description="Most group lines shown.")

    @field_validator("grades")
    @classmethod
    def _check_grades(cls, value: dict[str, Grade]) -> dict[str, Grade]:
        seen: dict[str, str] = {}
        for severity in value:
            if not severity.strip():
                raise ValueError("a severity must not be empty")
            other = seen.setdefault(severity.lower(), severity)
            if other != severity:
                raise ValueError(
                    f"{other!r} and {severity!r} name the same severity: "
                    "severities match case-insensitively"
                )
        return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
    if not value:
        raise ValueError("must not be empty")
    return value


class PipelineHint(BaseModel):
    """A log pattern and the hint shown when the failed job's log tail matches it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: Annotated[str, AfterValidator(_check_regex)] = Field(
        description="A Python regular expression searched in the last 64 KiB of the log."
    )
    hint: str = Field(min_length=1, description="What the line says, e.g. 'out of memory'.")

    @field_validator("hint")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value or not value.strip():
            raise ValueError("must be one non-empty line")
        return value


PipelineProvider = Literal["github", "gitlab", "jenkins"]

#: The target fields each provider needs; any other provider's target field is an error.
PIPELINE_TARGETS: dict[str, tuple[str, ...]] = {
    "github": ("repository", "workflow"),
    "gitlab": ("project",),
    "jenkins": ("job",),
}


class PipelineHealthSpec(ConnectedSpec):
    """The health of a CI pipeline on one branch: GitHub Actions, GitLab CI or Jenkins.

    GREEN when the newest completed run succeeded and nothing is stuck; YELLOW when it failed
    once, a run looks stuck or the failure rate reaches `yellow_failure_rate`; RED at
    `red_consecutive_failures` in a row or no success for `red_without_success`. Cancelled
    and skipped runs are not failures.
    """

    kind: Literal["pipeline_health"]
    provider: PipelineProvider = Field(description="github, gitlab or jenkins.")
    token_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the API token (Jenkins: "
        "user:token). The token itself never goes in a file and is never logged.",
        pattern=ENV_VAR_PATTERN,
    )
    repository: str | None = Field(
        default=None, validate_default=True, description="GitHub: owner/name."
    )
    workflow: str | None = Field(
        default=None,
        validate_default=True,
        description="GitHub: the workflow's file name (ci.yml) or numeric id.",
    )
    project: str | None = Field(
        default=None,
        validate_default=True,
        description="GitLab: the project's numeric id or its path, group/name.",
    )
    job: str | None = Field(
        default=None,
        validate_default=True,
        description="Jenkins: the job's path, folders separated by '/' (team/app/main).",
    )
    branch: str = Field(
        default="main",
        min_length=1,
        description="The branch (GitLab: ref). Jenkins: the job is the branch.",
    )
    runs: int = Field(
        default=20, ge=1, le=100, description="How many recent completed runs to weigh."
    )
    red_consecutive_failures: int = Field(
        default=3, ge=1, description="RED at this many failed runs in a row."
    )
    red_without_success: Duration = Field(
        default=86400.0,
        validate_default=True,
        description="RED when the newest run failed and nothing succeeded for this long.",
    )
    stuck_factor: float = Field(
        default=3.0,
        gt=1,
        allow_inf_nan=False,
        description="A run in progress is stuck after this many times the median duration "
        "of recent successful runs.",
    )
    yellow_failure_rate: float = Field(
        default=0.30,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="YELLOW when this share (0.3 = 30 %) of the weighed runs failed.",
    )
    hints: list[PipelineHint] = Field(
        default_factory=list,
        description="Extra {pattern, hint} pairs, tried before the built-in ones.",
    )

    @field_validator("token_env", mode="before")
    @classmethod
    def _env_name(cls, value: Any) -> Any:
        return check_token_env(value, example="GITHUB_TOKEN")

    @field_validator("repository", "workflow", "project", "job", mode="before")
    @classmethod
    def _target_as_text(cls, value: Any) -> Any:
        # A numeric workflow or project id may be written without quotes.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("repository", "workflow", "project", "job")
    @classmethod
    def _check_target(cls, value: str | None, info: ValidationInfo) -> str | None:
        provider = info.data.get("provider")
        name = info.field_name or ""
        if provider is None:
            return value
        needed = PIPELINE_TARGETS[provider]
        if name in needed and (value is None or not value.strip()):
            raise ValueError(f"required with provider {provider}")
        if name not in needed and value is not None:
            owner = next(p for p, fields in PIPELINE_TARGETS.items() if name in fields)
            raise ValueError(
                f"is for provider {owner}; provider {provider} uses " + " and ".join(needed)
            )
        if value is None:
            return value
        if name == "repository" and not re.match(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", value):
            raise ValueError(f"{value!r} is not owner/name")
        if name in ("job", "project") and any(not part for part in value.strip("/").split("/")):
            raise ValueError(f"{value!r} has an empty path segment")
        return value
