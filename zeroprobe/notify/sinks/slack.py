"""`type: slack`: a Slack incoming webhook (https://hooks.slack.com/services/...)."""

from __future__ import annotations

import asyncio

from zeroprobe.notify.delivery import Delivery, post_json
from zeroprobe.notify.sinks.base import Sink, SinkContext, chat_text
from zeroprobe.notify.transitions import Message

#: Slack truncates a message's `text` beyond 40,000 characters and a section block at 3,000;
#: a message people read on a phone is better far shorter.
SLACK_MAX_CHARS = 3000


def slack_escape(text: str) -> str:
    """Slack's three control characters as its entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(url: str, text: str) -> str:
    """Slack's link syntax."""
    return f"<{url}|{text}>"


def slack_body(message: Message, page_url: str) -> dict[str, object]:
    """The incoming webhook's body: mrkdwn text (bold is *one star* in Slack)."""
    text = chat_text(message, page_url, SLACK_MAX_CHARS, slack_link, slack_escape)
    return {"text": text.replace("**", "*"), "unfurl_links": False, "unfurl_media": False}


class SlackSink(Sink):
    """Slack answers 200 "ok"; 429 with Retry-After past about one message a second."""

    type = "slack"
    max_chars = SLACK_MAX_CHARS

    async def send(self, message: Message, ctx: SinkContext) -> Delivery:
        body = await asyncio.to_thread(slack_body, message, ctx.page_url)
        return await post_json(ctx.session, ctx.url, body, ctx.timeout_s)
