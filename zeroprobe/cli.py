"""The `zeroprobe` command: serve, check, run, demo, kinds."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from probes.redact import Redactor, learn_spec_secrets
from zeroprobe import __version__
from zeroprobe.config import access
from zeroprobe.config.kinds import installed_kinds
from zeroprobe.config.loader import LoadReport, load_contexts
from zeroprobe.config.notifiers import Notifiers, load_notifiers
from zeroprobe.config.settings import Settings, SettingsError
from zeroprobe.demo import run_demo
from zeroprobe.engine.core import Engine
from zeroprobe.logs import configure_logging
from zeroprobe.notify.notifier import Notifier
from zeroprobe.web.server import serve

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zeroprobe",
        description="Scheduled health probes served as Zero Problem documents.",
    )
    parser.add_argument("--version", action="version", version=f"zeroprobe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_cmd = commands.add_parser("serve", help="probe every context spec and serve results")
    serve_cmd.add_argument("--contexts", help="context-spec folder (env ZEROPROBE_CONTEXTS)")
    serve_cmd.add_argument("--host", help="address to listen on (env ZEROPROBE_HOST)")
    serve_cmd.add_argument("--port", type=int, help="port to listen on (env ZEROPROBE_PORT)")
    serve_cmd.add_argument(
        "--notifiers", help="the notifiers file: where colour changes go (env ZEROPROBE_NOTIFIERS)"
    )

    check_cmd = commands.add_parser("check", help="validate context specs and exit")
    check_cmd.add_argument("contexts", nargs="?", help="folder to check (default: contexts/)")
    check_cmd.add_argument(
        "--notifiers", help="a notifiers file to check too (env ZEROPROBE_NOTIFIERS)"
    )

    run_cmd = commands.add_parser("run", help="run one probe once and print its document")
    run_cmd.add_argument("service_id")
    run_cmd.add_argument("--contexts", help="context-spec folder (env ZEROPROBE_CONTEXTS)")

    demo_cmd = commands.add_parser(
        "demo", help="serve the shipped contexts against a simulated replica set"
    )
    demo_cmd.add_argument("--contexts", help="context-spec folder (default: contexts/)")
    demo_cmd.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    demo_cmd.add_argument("--port", type=int, help="port to listen on (default 8080)")

    commands.add_parser(
        "kinds", help="list the installed probe kinds (entry points zeroprobe.kinds)"
    )
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the `zeroprobe` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    # One redactor for the log handler, the probes and everything printed: secrets a probe
    # learns at run time (bearer tokens, Basic headers) are then scrubbed everywhere.
    redact = Redactor.from_environ(env)
    configure_logging(redact, env.get("ZEROPROBE_LOG_LEVEL", "INFO"))
    if args.command == "kinds":
        return kinds_command(redact)
    try:
        if args.command == "check":
            notifiers = args.notifiers or env.get("ZEROPROBE_NOTIFIERS", "").strip() or None
            return check(args.contexts, env, redact, notifiers)
        settings = Settings.from_environ(
            env,
            contexts=getattr(args, "contexts", None),
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            notifiers=getattr(args, "notifiers", None),
        )
    except SettingsError as exc:
        print(f"zeroprobe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if settings.auth_token is not None:
        redact.add(settings.auth_token)  # read from ZEROPROBE_AUTH_TOKEN_FILE, maybe
    if args.command in ("serve", "demo"):
        log.info("%s", access.describe(settings.auth_token, settings.auth_protect))
    for problem in installed_kinds().problems:
        log.warning("%s", problem)
    if args.command == "serve":
        return serve_command(settings, env, redact)
    if args.command == "run":
        return run_command(settings, env, args.service_id, redact)
    return run_demo(settings, env)


def kinds_command(redact: Redactor) -> int:
    """`zeroprobe kinds`: the installed kinds with their distribution and version; every
    plugin that could not be used on stderr, one line each (exit 1 when there is one)."""
    registry = installed_kinds()
    rows = [("KIND", "DISTRIBUTION", "VERSION", "ENTRY POINT")] + [
        (name, entry.distribution, entry.version, entry.target)
        for name, entry in sorted(registry.installed.items())
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[3]
        )
    for problem in registry.problems:
        print(f"zeroprobe: {redact(problem)}", file=sys.stderr)
    return EXIT_INVALID if registry.problems else EXIT_OK


def print_kind_problems(redact: Redactor) -> None:
    """Each plugin that could not be used, as a warning line on stderr."""
    for problem in installed_kinds().problems:
        print(f"warning: {redact(problem)}", file=sys.stderr)


def print_problems(report: LoadReport, redact: Redactor) -> None:
    """Every problem as `path:line: field: message`, on stderr. A message may quote a value
    of the file (a URI with a password put in the wrong field): it is scrubbed."""
    for problem in report.problems:
        print(redact(str(problem)), file=sys.stderr)


def check(
    directory: str | None,
    environ: Mapping[str, str],
    redact: Redactor | None = None,
    notifiers: str | None = None,
) -> int:
    """`zeroprobe check`: 1 when any file (a notifiers file too) has an error, 0 otherwise
    (warnings allowed)."""
    folder = directory or environ.get("ZEROPROBE_CONTEXTS") or Settings().contexts
    report = load_contexts(folder, environ)
    sinks = load_notifiers(notifiers, environ)
    redact = redact or Redactor.from_environ(environ)
    learn_spec_secrets(redact, (cf.spec for cf in report.specs), environ, installed_kinds().kinds)
    for secret in sinks.notifiers.secrets if sinks.notifiers else ():
        redact.add(secret)
    print_kind_problems(redact)
    print_problems(report, redact)
    for problem in sinks.problems:
        print(redact(str(problem)), file=sys.stderr)
    errors = [*report.errors, *sinks.errors]
    if errors:
        files = len({p.path for p in errors})
        print(
            f"{len(errors)} error(s) in {files} file(s); {len(report.specs)} valid spec(s)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    print(f"ok: {len(report.specs)} valid spec(s) in {folder}")
    if sinks.notifiers is not None:
        print(f"ok: {describe_notifiers(sinks.notifiers)} in {notifiers}")
    return EXIT_OK


def describe_notifiers(notifiers: Notifiers) -> str:
    """What a notifiers file configures, without any URL of a sink."""
    config = notifiers.config
    sinks = ", ".join(f"{s.name} ({s.type})" for s in config.sinks) or "none"
    alertmanagers = len(config.alertmanager.urls) if config.alertmanager else 0
    return f"{alertmanagers} Alertmanager(s); sinks: {sinks}"


def load_or_report(
    settings: Settings, environ: Mapping[str, str], redact: Redactor
) -> LoadReport | None:
    """Load the contexts; print every problem; None when any is an error."""
    report = load_contexts(settings.contexts, environ)
    print_problems(report, redact)
    if not report.ok:
        print(
            f"zeroprobe: {len(report.errors)} error(s) in the context specs; "
            "fix them (see `zeroprobe check`)",
            file=sys.stderr,
        )
        return None
    return report


def serve_command(settings: Settings, environ: Mapping[str, str], redact: Redactor) -> int:
    """`zeroprobe serve`: run until SIGTERM/SIGINT."""
    report = load_or_report(settings, environ, redact)
    if report is None:
        return EXIT_USAGE
    sinks = load_notifiers(settings.notifiers, environ)
    for secret in sinks.notifiers.secrets if sinks.notifiers else ():
        redact.add(secret)
    for problem in sinks.problems:
        print(redact(str(problem)), file=sys.stderr)
    if sinks.errors:
        print(
            f"zeroprobe: {len(sinks.errors)} error(s) in the notifiers file {settings.notifiers}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    engine = Engine(report.specs, settings, environ, redact=redact, notifiers=sinks.notifiers)
    notifier = Notifier(engine) if settings.notifiers is not None else None
    if notifier is not None and sinks.notifiers is not None:
        log.info("notifications: %s", describe_notifiers(sinks.notifiers))
    try:
        asyncio.run(serve(engine, notifier=notifier))
    except OSError as exc:
        print(
            f"zeroprobe: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return EXIT_OK


def run_command(
    settings: Settings, environ: Mapping[str, str], service_id: str, redact: Redactor
) -> int:
    """`zeroprobe run ID`: run one probe once and print its Zero Problem document."""
    report = load_or_report(settings, environ, redact)
    if report is None:
        return EXIT_USAGE
    engine = Engine(report.specs, settings, environ, redact=redact)
    if not engine.knows(service_id):
        known = ", ".join(sorted(engine.contexts)) or "none"
        print(f"zeroprobe: unknown service id {service_id!r} (known: {known})", file=sys.stderr)
        return EXIT_USAGE

    async def once() -> bytes:
        try:
            return (await engine.run_once(service_id)).document
        finally:
            await engine.stop()

    document = asyncio.run(once())
    print(redact(json.dumps(json.loads(document), indent=2, ensure_ascii=False)))
    return EXIT_OK
