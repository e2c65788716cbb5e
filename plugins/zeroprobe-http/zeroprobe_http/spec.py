"""The http_endpoint spec: which requests to send to a connection's base URL, and how to grade
what comes back (status, body, response time, certificate expiry).

Every mistake is an error at load time with a message naming the fix; only what depends on
the machine the probe runs on (the CA bundle's file, the connection's variable) is checked
when the probe runs, as a RED line.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema

from zeroprobe.plugin import ConnectedSpec, Duration, format_duration, request_timeout_s

KIND_NAME = "http_endpoint"
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
#: Checks one spec may hold: each is a request every interval, and a line on the page. All
#: are sent at once: at most the shared client's connections per target (16), so that no check
#: waits for another's connection, a wait that would count as its response time.
MAX_CHECKS = 16
MAX_PATH_CHARS = 2000
ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
STATUS_CLASS_PATTERN = r"^[1-5][xX][xX]$"
DEFAULT_YELLOW_S = 1.0
DEFAULT_RED_S = 5.0
DEFAULT_YELLOW_DAYS = 14
DEFAULT_RED_DAYS = 7

Method = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]


class _StrictModel(BaseModel):
    """A frozen model that names the allowed fields when given an unknown one.

    zeroprobe's loader lists the allowed fields of a model it can reach field by field; inside
    the list of checks it cannot, so these models say it themselves.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = sorted(cls.model_fields)
            for key in data:
                if str(key) not in cls.model_fields:
                    close = difflib.get_close_matches(str(key), allowed, n=1)
                    hint = f", did you mean {close[0]!r}?" if close else ""
                    raise ValueError(f"unknown field {key!r}{hint} (allowed: {', '.join(allowed)})")
        return data


def _or(words: tuple[str, ...]) -> str:
    """`GET, HEAD or POST`."""
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


def _method(value: Any) -> Any:
    """Methods may be written in any case: `get` is GET."""
    if isinstance(value, str):
        upper = value.strip().upper()
        if upper not in METHODS:
            raise ValueError(f"{value!r} is not a method this kind sends: use {_or(METHODS)}")
        return upper
    return value


def _status(value: Any) -> Any:
    """200, "200" or a class such as "2xx" (any 2.. status)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a status code like 200 or a class like '2xx', got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if re.match(STATUS_CLASS_PATTERN, text):
            return text.lower()
        if text.isascii() and text.isdigit():
            value = int(text)
        else:
            raise ValueError(
                f"{value!r} is not a status: write a code like 200 or a class like '2xx'"
            )
    if isinstance(value, int) and not 100 <= value <= 599:
        raise ValueError(f"{value} is not an HTTP status: codes run from 100 to 599")
    return value


def _regex(value: str) -> str:
    if not value:
        raise ValueError("must not be empty: write a Python regular expression, like 'ok'")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
    return value


def _path(value: str) -> str:
    if not value.startswith("/") or value.startswith("//"):
        raise ValueError(
            f"{value!r} is not a path: write the path below the connection's base URL, starting "
            "with one '/', like /health (the scheme and host come from the connection)"
        )
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValueError(f"{value!r} has a space or a control character: percent-encode it (%20)")
    if "#" in value:
        raise ValueError(f"{value!r} has a '#': a fragment is never sent to the server")
    return value


def _default_status() -> list[int | str]:
    return [200]


#: A status code (200) or a class of them ("2xx").
ExpectedStatus = Annotated[
    int | str,
    BeforeValidator(_status),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": STATUS_CLASS_PATTERN},
            ],
            "description": "A status code like 200, or a class like '2xx'.",
        }
    ),
]

#: A Python regular expression, checked when the spec is loaded.
Regex = Annotated[str, AfterValidator(_regex)]


class ResponseTimeThresholds(_StrictModel):
    """Response-time bands: GREEN below yellow, YELLOW from yellow, RED from red."""

    yellow: Duration = Field(
        default=DEFAULT_YELLOW_S,
        validate_default=True,
        description="YELLOW from this response time "
        f"(default {format_duration(DEFAULT_YELLOW_S)}).",
    )
    red: Duration = Field(
        default=DEFAULT_RED_S,
        validate_default=True,
        description=f"RED from this response time (default {format_duration(DEFAULT_RED_S)}); "
        "greater than yellow.",
    )

    @field_validator("red")
    @classmethod
    def _check_order(cls, value: float, info: ValidationInfo) -> float:
        yellow = info.data.get("yellow")
        if yellow is not None and yellow >= value:
            raise ValueError(
                f"red ({format_duration(value)}) must be greater than yellow "
                f"({format_duration(yellow)})"
            )
        return value


class CertificateThresholds(BaseModel):
    """Days left before the HTTPS certificate expires: YELLOW at or below yellow_days, RED at
    or below red_days; an expired certificate is RED. Unused over plain HTTP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    yellow_days: int = Field(
        default=DEFAULT_YELLOW_DAYS,
        ge=0,
        le=3650,
        description="YELLOW at or below this many whole days left "
        f"(default {DEFAULT_YELLOW_DAYS}).",
    )
    red_days: int = Field(
        default=DEFAULT_RED_DAYS,
        ge=0,
        le=3650,
        validate_default=True,
        description=f"RED at or below this many whole days left (default {DEFAULT_RED_DAYS}); "
        "less than yellow_days.",
    )

    @field_validator("red_days")
    @classmethod
    def _check_order(cls, value: int, info: ValidationInfo) -> int:
        yellow = info.data.get("yellow_days")
        if yellow is not None and value >= yellow:
            raise ValueError(f"red_days ({value}) must be less than yellow_days ({yellow})")
        return value


class EndpointCheck(_StrictModel):
    """One request and what its reply must be; one line on the page."""

    path: Annotated[str, AfterValidator(_path)] = Field(
        default="/",
        max_length=MAX_PATH_CHARS,
        description="Path (and query) below the connection's base URL, like /health or "
        "/search?q=ok. Redirects are not followed: a 301 is graded as a 301.",
    )
    method: Annotated[Method, BeforeValidator(_method)] = Field(
        default="GET", description=f"{_or(METHODS)}, in any case (default GET)."
    )
    expect_status: list[ExpectedStatus] = Field(
        default_factory=_default_status,
        min_length=1,
        description="Statuses that are GREEN: codes (200) or classes ('2xx'); any other is RED. "
        "Default [200].",
    )
    body_matches: Regex | None = Field(
        default=None,
        description="A Python regular expression the body must match (searched, not anchored; "
        "in the first 4 MiB of the body); RED when it does not.",
    )
    body_not_matches: Regex | None = Field(
        default=None,
        description="A Python regular expression the body must not match, like "
        "'maintenance|error'; RED when it does.",
    )
    response_time: ResponseTimeThresholds = Field(
        default_factory=ResponseTimeThresholds,
        description="From sending the request (connecting included) until the body is read: "
        f"YELLOW from yellow (default {format_duration(DEFAULT_YELLOW_S)}), RED from red "
        f"(default {format_duration(DEFAULT_RED_S)}).",
    )

    @model_validator(mode="after")
    def _body_needs_a_body(self) -> EndpointCheck:
        if self.method == "HEAD" and (self.body_matches or self.body_not_matches):
            raise ValueError(
                "body_matches and body_not_matches need a body, and a HEAD reply has none: "
                "use method GET"
            )
        return self

    @property
    def name(self) -> str:
        """`GET /health`: how lines and metrics name the check."""
        return f"{self.method} {self.path}"


class HttpEndpointSpec(ConnectedSpec):
    """Requests to an HTTP(S) endpoint, each graded on its status, its body, its response time
    and (over HTTPS) the days left on the server's certificate. One line per check.

    The base URL is the value of ZEROPROBE_CONNECTION_<LABEL>, like https://shop.example;
    its user:password@ becomes basic auth and never appears in a line.
    """

    kind: Literal["http_endpoint"]
    bearer_token_env: str | None = Field(
        default=None,
        description="Name of an environment variable holding a bearer token, sent as "
        "'Authorization: Bearer <token>'. The token itself never goes in a file.",
        pattern=ENV_VAR_PATTERN,
    )
    checks: list[EndpointCheck] = Field(
        default_factory=lambda: [EndpointCheck()],
        min_length=1,
        max_length=MAX_CHECKS,
        description="The requests, each with its own expectations. Default: one GET / "
        "expecting 200.",
    )
    certificate: CertificateThresholds = Field(
        default_factory=CertificateThresholds,
        description=f"HTTPS only: YELLOW at or below yellow_days (default {DEFAULT_YELLOW_DAYS}) "
        f"days before the certificate expires, RED at or below red_days (default "
        f"{DEFAULT_RED_DAYS}); expired: RED.",
    )
    tls_verify: bool = Field(
        default=True,
        strict=True,
        description="Verify the server's certificate (default true). false: any certificate is "
        "accepted, its expiry still graded.",
    )
    tls_ca_file: str | None = Field(
        default=None,
        description="Absolute path of a PEM bundle of the CAs to trust instead of the system's "
        "(an internal CA). Read at every run: a missing file is a RED line.",
    )

    @field_validator("bearer_token_env", mode="before")
    @classmethod
    def _env_name(cls, value: Any) -> Any:
        if isinstance(value, str) and not re.match(ENV_VAR_PATTERN, value):
            # The message never quotes the value: it may be the token itself.
            raise ValueError(
                "must name an environment variable that holds the token (letters, digits and "
                "'_', like SHOP_TOKEN), never the token itself"
            )
        return value

    @field_validator("checks")
    @classmethod
    def _check_checks(cls, value: list[EndpointCheck], info: ValidationInfo) -> list[EndpointCheck]:
        seen: dict[str, int] = {}
        for number, check in enumerate(value, start=1):
            first = seen.setdefault(check.name, number)
            if first != number:
                raise ValueError(
                    f"checks {first} and {number} are both {check.name}: each request once"
                )
        timeout_s = info.data.get("timeout")
        if timeout_s is not None:
            limit_s = request_timeout_s(timeout_s)
            for number, check in enumerate(value, start=1):
                yellow_s = check.response_time.yellow
                # Only bands written in the file: a short timeout with the default bands is
                # a choice (fail fast), not a mistake.
                if "response_time" in check.model_fields_set and yellow_s >= limit_s:
                    raise ValueError(
                        f"check {number} ({check.name}): response_time.yellow "
                        f"({format_duration(yellow_s)}) is never reached: a request gives up "
                        f"after {format_duration(round(limit_s, 1))} (its share of timeout "
                        f"{format_duration(timeout_s)}); lower yellow or raise timeout"
                    )
        return value

    @field_validator("tls_ca_file")
    @classmethod
    def _check_ca_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if not value.strip() or "\0" in value or "\n" in value:
            raise ValueError("must be the absolute path of a PEM file")
        if not os.path.isabs(value):
            raise ValueError(
                f"{value!r} is not an absolute path: write the full path of the PEM file, like "
                "/etc/zeroprobe/ca/internal.pem (a relative one would depend on where "
                "zeroprobe starts)"
            )
        if info.data.get("tls_verify") is False:
            raise ValueError(
                "has no use with tls_verify: false (nothing is verified): remove one of them"
            )
        return value
