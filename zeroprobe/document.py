"""Rendering the Zero Problem document: once per result, never per request."""

from __future__ import annotations

import json
from collections.abc import Sequence

from zeroprobe.grading import Grade, Line


def action_body(lines: Sequence[Line]) -> str:
    """The Markdown actionBody: one `- ` line per member, series or pipeline."""
    return "\n".join(line.text for line in lines)


def render_document(service_id: str, grade: Grade, timestamp_ms: int, body: str) -> bytes:
    """The exact Zero Problem document as UTF-8 JSON bytes."""
    document = {
        service_id: {
            "status": grade.value,
            "timestamp": timestamp_ms,
            "messages": [
                {
                    "statusCode": "",
                    "statusBody": service_id,
                    "actionCode": "",
                    "actionBody": body,
                }
            ],
        }
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
