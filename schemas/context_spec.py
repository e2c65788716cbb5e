"""Context-spec models: the fields an SRE writes in `contexts/*.yaml|*.md`."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic.json_schema import WithJsonSchema

from zeroprobe.durations import format_duration, parse_duration_s
from zeroprobe.grading import Thresholds

SERVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
SERVICE_ID_MAX_LENGTH = 200
CONNECTION_LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

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


class MongoReplicationLagSpec(SpecBase):
    """Replication lag of every member of a MongoDB replica set, in milliseconds."""

    kind: Literal["mongo_replication_lag"]
    connection: str = Field(
        description="A label; the URI is read from ZEROPROBE_CONNECTION_<LABEL>.",
        pattern=CONNECTION_LABEL_PATTERN,
    )
    thresholds: LagThresholds = Field(default_factory=LagThresholds)

    @field_validator("connection", mode="before")
    @classmethod
    def _no_uri(cls, value: Any) -> Any:
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


#: Every spec model, one per probe kind. A test checks it names the same kinds as the registry.
SPEC_TYPES: tuple[type[SpecBase], ...] = (MongoReplicationLagSpec,)


def spec_kind(spec_type: type[SpecBase]) -> str:
    """The `kind:` value a spec model accepts."""
    annotation = spec_type.model_fields["kind"].annotation
    (kind,) = annotation.__args__  # type: ignore[union-attr]
    return str(kind)


_BY_KIND = {spec_kind(t): t for t in SPEC_TYPES}


def spec_type_for_kind(kind: str) -> type[SpecBase] | None:
    """The spec model of `kind`, or None for an unknown kind."""
    return _BY_KIND.get(kind)


def known_kinds() -> list[str]:
    """Every kind a spec may name, sorted."""
    return sorted(_BY_KIND)
