"""Logging set-up: one plain line per event, secrets scrubbed from every record."""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType

from probes.redact import RedactingFilter, Redactor

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger("zeroprobe")


def configure_logging(redactor: Redactor, level: str = "INFO") -> None:
    """Log to stderr through a redacting filter; quiet APScheduler's per-run INFO lines.

    The filter sits on the one handler, so it scrubs every record that reaches it, from any
    logger (aiohttp, APScheduler, asyncio, PyMongo propagate to the root). Warnings and
    uncaught exceptions, which Python would print to stderr itself, are routed through it too.
    """
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
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    log.critical("uncaught error: %s", kind.__name__, exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    log.critical(
        "uncaught error in thread %s: %s",
        args.thread.name if args.thread else "?",
        args.exc_type.__name__,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
