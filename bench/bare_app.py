"""The baseline: a bare aiohttp app answering PUT and GET /{id} with constant bytes.

It never reads a request body: a PUT carrying one costs it only what aiohttp itself does with
a body (parse it, buffer it, drop it), the least any aiohttp app can pay."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from aiohttp import web


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", required=True, help="file holding the bytes to answer")
    parser.add_argument("--duration", type=float, default=600.0, help="stop after this long")
    args = parser.parse_args()
    body = Path(args.body).read_bytes()

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def run() -> None:
        app = web.Application()
        app.router.add_route("PUT", "/{service_id}", answer)
        app.router.add_get("/{service_id}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port).start()
        try:
            await asyncio.sleep(args.duration)
        finally:
            await runner.cleanup()

    asyncio.run(run())


if __name__ == "__main__":
    main()
