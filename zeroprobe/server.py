"""Serving: run the aiohttp app until SIGTERM or SIGINT, then stop within a few seconds.

While serving, SIGHUP and changes of the contexts folder reload the specs (reload.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from zeroprobe.app import create_app
from zeroprobe.engine import Engine
from zeroprobe.reload import RELOADER, reload_triggers

log = logging.getLogger(__name__)


async def serve(engine: Engine, on_started: Callable[[str], None] | None = None) -> None:
    """Serve `engine` on its settings' host and port until a stop signal arrives."""
    settings = engine.settings
    app = create_app(engine)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=settings.shutdown_timeout_s
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        url = _url(runner, settings.host, settings.port)
        log.info("serving on %s", url)
        if on_started is not None:
            on_started(url)
        async with reload_triggers(app[RELOADER], settings.contexts_poll_s):
            await stop.wait()
        log.info("stopping: cancelling probe runs and closing connections")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    log.info("stopped")


def _url(runner: web.AppRunner, host: str, port: int) -> str:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            port = int(address[1])
            break
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
