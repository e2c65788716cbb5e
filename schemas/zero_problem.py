"""The Zero Problem document: what `PUT /<service-id>` answers, exactly."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class ZeroProblemMessage(BaseModel):
    """The single message of a status; actionBody is Markdown, one `- ` line per subject."""

    model_config = ConfigDict(extra="forbid")

    statusCode: str  # noqa: N815 - the wire contract's spelling
    statusBody: str  # noqa: N815
    actionCode: str  # noqa: N815
    actionBody: str  # noqa: N815


class ZeroProblemStatus(BaseModel):
    """One service's status: colour, collection time (epoch ms) and its message."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["GREEN", "YELLOW", "RED"]
    timestamp: int = Field(ge=0, description="Epoch milliseconds when the result was collected.")
    messages: list[ZeroProblemMessage] = Field(min_length=1, max_length=1)


class ZeroProblemDocument(RootModel[dict[str, ZeroProblemStatus]]):
    """The whole document: one key, the service id."""
