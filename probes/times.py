"""Times as targets write them (RFC 3339) and as lines say them (12m, 3h5m)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

_FRACTION = re.compile(r"\.(\d+)")


def parse_time_ms(value: Any) -> int | None:
    """An RFC 3339 time (`2026-11-22T02:45:33.123Z`) as epoch ms; None when absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    # Python 3.11 reads at most microseconds; Go may write nanoseconds.
    text = _FRACTION.sub(lambda m: "." + m[1][:6].ljust(6, "0"), value, count=1)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    ms = round(parsed.timestamp() * 1000)
    # Go's zero time (0001-01-01) means "not set".
    return ms if ms > 0 else None


def format_age(seconds: float) -> str:
    """How long an alert has fired, the way people say it: 45s, 12m, 3h5m, 2d4h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        hours, minutes = divmod(s // 60, 60)
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(s // 3600, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"
