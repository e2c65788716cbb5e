"""GET /metrics: the exposition the scraper asks for, text or OpenMetrics, gzip or not.

Prometheus asks for OpenMetrics first (its Accept header prefers it) and gzip. The work is
split by what holds the GIL: the event loop renders the probes that changed since the
previous scrape, a few hundred at a time; a thread joins the families that changed, renders
the few process-wide series and compresses what changed (joining and zlib release the GIL);
the loop sends the pieces in slices, so no single copy into the socket buffer is long.
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web

from zeroprobe.engine.exposition import Format
from zeroprobe.engine.metrics import METRICS_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE, Metrics

#: The OpenMetrics versions whose text this is (0.0.1 is what Prometheus also offers).
_OPENMETRICS_VERSIONS = (None, "0.0.1", "1.0.0")
#: Bytes handed to the transport at a time: what it cannot send at once it copies, with the
#: GIL held, so an uncompressed 7 MB body is sent 256 KiB at a time.
SLICE_BYTES = 256 * 1024
#: Build the body in a thread (see bench/metrics_scrape.py for the measurement both ways).
BUILD_IN_THREAD = True


def _ranges(header: str) -> list[tuple[str, dict[str, str], float]]:
    """(media or coding, parameters, q) of each element of an Accept(-Encoding) header."""
    ranges = []
    for element in header.split(","):
        name, *params = element.split(";")
        parameters: dict[str, str] = {}
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            else:
                parameters[key] = value
        if name.strip():
            ranges.append((name.strip().lower(), parameters, q))
    return ranges


def negotiate_format(accept: str) -> Format:
    """OpenMetrics when the Accept header prefers it to the classic text format (a tie, or
    no header, gives the text format)."""
    openmetrics = text = 0.0
    for media, parameters, q in _ranges(accept):
        if media == "application/openmetrics-text":
            if parameters.get("version") in _OPENMETRICS_VERSIONS:
                openmetrics = max(openmetrics, q)
        elif media in ("text/plain", "text/*", "*/*"):
            text = max(text, q)
    if not accept.strip():
        return "text"
    return "openmetrics" if openmetrics > text else "text"


def accepts_gzip(accept_encoding: str) -> bool:
    """True when the Accept-Encoding header names gzip with a q above 0."""
    return any(coding in ("gzip", "x-gzip") and q > 0 for coding, _, q in _ranges(accept_encoding))


async def serve_metrics(request: web.Request, metrics: Metrics) -> web.StreamResponse:
    """Answer a scrape of `metrics`."""
    fmt = negotiate_format(request.headers.get(hdrs.ACCEPT, ""))
    compressed = accepts_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
    for _ in metrics.refresh():
        await asyncio.sleep(0)  # PUTs are answered between two batches
    scrape = metrics.scrape(fmt, compressed)
    if BUILD_IN_THREAD:
        pieces = await asyncio.to_thread(scrape.build)
    else:
        pieces = scrape.build()
    scrape.finish()
    headers = {
        hdrs.CONTENT_TYPE: OPENMETRICS_CONTENT_TYPE
        if fmt == "openmetrics"
        else METRICS_CONTENT_TYPE,
        hdrs.VARY: "Accept, Accept-Encoding",
    }
    if compressed:
        headers[hdrs.CONTENT_ENCODING] = "gzip"
    if request.method == hdrs.METH_HEAD:
        return web.Response(headers=headers, body=b"".join(pieces))
    response = web.StreamResponse(headers=headers)
    response.content_length = sum(len(piece) for piece in pieces)
    await response.prepare(request)
    for piece in pieces:
        view = memoryview(piece)
        for start in range(0, len(view), SLICE_BYTES):
            await response.write(view[start : start + SLICE_BYTES])
    await response.write_eof()
    return response
