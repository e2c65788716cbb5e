"""`type: discord`: a Discord webhook (https://discord.com/api/webhooks/ID/TOKEN)."""

from __future__ import annotations

import asyncio

from zeroprobe.notify.delivery import Delivery, post_json
from zeroprobe.notify.sinks.base import Sink, SinkContext, chat_text
from zeroprobe.notify.transitions import Message

#: Discord refuses a message whose `content` is longer (400).
DISCORD_MAX_CHARS = 2000


def discord_link(url: str, text: str) -> str:
    """A masked link; the angle brackets keep Discord from adding a preview."""
    return f"[{text}](<{url}>)"


def discord_escape(text: str) -> str:
    """Text from targets must not format or ping: Markdown's special characters escaped."""
    for char in ("\\", "*", "_", "~", "`", "|", ">", "[", "]"):
        text = text.replace(char, "\\" + char)
    return text.replace("@", "@\u200b")


def discord_body(message: Message, page_url: str) -> dict[str, object]:
    """The webhook's body: content within 2,000 characters, and no mention may ping anyone."""
    content = chat_text(message, page_url, DISCORD_MAX_CHARS, discord_link, discord_escape)
    return {"content": content, "allowed_mentions": {"parse": []}}


class DiscordSink(Sink):
    """Discord answers 204 (200 with ?wait=true); 429 with `retry_after` in the JSON body."""

    type = "discord"
    max_chars = DISCORD_MAX_CHARS

    async def send(self, message: Message, ctx: SinkContext) -> Delivery:
        body = await asyncio.to_thread(discord_body, message, ctx.page_url)
        return await post_json(ctx.session, ctx.url, body, ctx.timeout_s)
