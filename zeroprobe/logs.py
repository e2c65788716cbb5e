"""Logging set-up: one plain line per event, secrets scrubbed from every record."""

from __future__ import annotations

import logging
import sys

from zeroprobe.redact import RedactingFilter, Redactor

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(redactor: Redactor, level: str = "INFO") -> None:
    """Log to stderr through a redacting filter; quiet APScheduler's per-run INFO lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%dT%H:%M:%S%z"))
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
