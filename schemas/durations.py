"""Duration values in context specs: "30s", "2m", "1m30s", "500ms", or a number of seconds."""

from __future__ import annotations

import math
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(value: object) -> float:
    """Return the duration in seconds, or raise ValueError with a message for a person."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '30s' or '2m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            if not _WHOLE.match(text):
                raise ValueError(
                    f"expected a duration like '30s', '2m', '1m30s' or '500ms', got {value!r}"
                ) from None
            seconds = sum(float(n) * _UNIT_S[unit] for n, unit in _PART.findall(text))
    else:
        raise ValueError(f"expected a duration like '30s' or '2m', got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a positive duration, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds back the way a person writes them: 90 -> '90s', 0.5 -> '500ms'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:g}s"
