"""`type: apprise`: any of the 100+ services Apprise knows (Telegram, Teams, Matrix, ntfy,
e-mail, ...), by its Apprise URL (tgram://..., ntfys://..., json://...).

Apprise is synchronous (it uses requests) and says only whether a notification went out, not
why not: it runs in a thread, and a failure is retried with backoff like a 5xx (there is no
Retry-After to honour, and no way to tell a refusal from an outage).
"""

from __future__ import annotations

import asyncio
import logging

from zeroprobe.notify.delivery import Delivery
from zeroprobe.notify.sinks.base import Sink, SinkContext, chat_text
from zeroprobe.notify.transitions import Message

log = logging.getLogger(__name__)

#: Apprise cuts or splits a body to each service's own limit; ours keeps a message readable.
APPRISE_MAX_CHARS = 4000


def apprise_link(url: str, text: str) -> str:
    """A Markdown link."""
    return f"[{text}]({url})"


class AppriseSink(Sink):
    """Sends through Apprise, in a thread."""

    type = "apprise"
    max_chars = APPRISE_MAX_CHARS

    async def send(self, message: Message, ctx: SinkContext) -> Delivery:
        title = message.headline()
        try:
            async with asyncio.timeout(ctx.timeout_s * 3):
                body = await asyncio.to_thread(
                    chat_text, message, ctx.page_url, self.max_chars, apprise_link
                )
                sent = await asyncio.to_thread(_notify, ctx.url, title, body, ctx.timeout_s)
        except TimeoutError:
            return Delivery(ok=False, retry=True, detail="Apprise did not finish in time")
        if sent is None:
            return Delivery(ok=False, retry=False, detail="Apprise does not know this URL")
        if not sent:
            return Delivery(ok=False, retry=True, detail="Apprise reported a failure")
        return Delivery(ok=True, detail="delivered")


def _notify(url: str, title: str, body: str, timeout_s: float) -> bool | None:
    # Imported on first use: it loads the plugin of every service it knows.
    import apprise  # noqa: PLC0415

    client = apprise.Apprise()
    if not client.add(url):
        return None
    for server in client:
        # Apprise's connect and read timeouts (cto, rto), 4 s by default.
        server.socket_connect_timeout = timeout_s
        server.socket_read_timeout = timeout_s
    result = client.notify(body=body, title=title, body_format=apprise.NotifyFormat.MARKDOWN)
    return bool(result)
