"""How the lines of this kind write spans, sizes and the server's own words."""

from __future__ import annotations

from probes.lines import one_line

#: The most of a server's own message a line quotes (a heartbeat error, an info message).
QUOTE_MAX_CHARS = 200
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_span(seconds: float) -> str:
    """A span the way an on-call engineer reads it: 45s, 12m, 26h 14m (whole units, floored)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    hours, minutes = divmod(s // 60, 60)
    return f"{hours}h {minutes}m"


def format_bytes(size: float) -> str:
    """A size in binary units with one decimal: 12.4 GiB."""
    if size < 1024:
        return f"{max(0, int(size))} B"
    value, exponent = float(size), 0
    while value >= 1024 and exponent < len(_UNITS) - 1:
        value, exponent = value / 1024, exponent + 1
    return f"{value:.1f} {_UNITS[exponent]}"


def quote(text: object) -> str:
    """What a server said, on one line and capped; empty when it said nothing."""
    words = one_line(str(text or "")).strip()
    if len(words) > QUOTE_MAX_CHARS:
        words = words[: QUOTE_MAX_CHARS - 1].rstrip() + "…"
    return words
