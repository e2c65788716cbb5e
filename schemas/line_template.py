"""Line templates of context specs: `- {labels} {value}`, `- {service} error rate {value}`.

A small, explicit substitution, not `str.format`: a placeholder is a bare name, replaced by
plain text. There is no attribute access, indexing or format spec, so label values (which come
from the monitored systems) cannot inject anything. `{{` and `}}` are literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(rf"^{NAME_PATTERN}$")

#: A parsed template: literal text and placeholder names, alternating as they appear.
Template = tuple[tuple[str, str], ...]  # ("text", "...") or ("name", "...")


def parse_template(text: str) -> Template:
    """Parse `text`; ValueError with a message for a person on an unusable placeholder."""
    parts: list[tuple[str, str]] = []
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() > position:
            parts.append(("text", text[position : match.start()]))
        token = match.group(0)
        position = match.end()
        if token in ("{{", "}}"):
            parts.append(("text", token[0]))
        elif token in ("{", "}"):
            raise ValueError(
                f"unmatched {token!r} at position {match.start() + 1}: "
                "write '{{' or '}}' for a literal brace"
            )
        else:
            name = (match.group(1) or "").strip()
            if not _NAME.match(name):
                raise ValueError(
                    f"unknown placeholder {token!r}: use {{labels}}, {{value}} or "
                    "{<label name>}, without format specs, attributes or indexes"
                )
            parts.append(("name", name))
    if position < len(text):
        parts.append(("text", text[position:]))
    return tuple(parts)


def render_template(template: Template, values: Mapping[str, str]) -> str:
    """The template with each placeholder replaced; a name without a value renders empty."""
    return "".join(piece if what == "text" else values.get(piece, "") for what, piece in template)
