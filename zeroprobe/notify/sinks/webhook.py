"""`type: webhook`: a JSON body for programs (documented in the README), posted as is."""

from __future__ import annotations

import asyncio
from typing import Any

from zeroprobe.notify.delivery import Delivery, post_json
from zeroprobe.notify.sinks.base import Sink, SinkContext
from zeroprobe.notify.transitions import Message, page_link, rfc3339

WEBHOOK_VERSION = "1"


def webhook_body(message: Message, page_url: str) -> dict[str, Any]:
    """The webhook's JSON body. `event_id` is the message's and each transition has its own:
    both stay the same across retries and restarts, so a receiver can drop repeats."""
    return {
        "version": WEBHOOK_VERSION,
        "event_id": message.event_id,
        "source": "zeroprobe",
        "created_at": rfc3339(message.created_ms),
        "headline": message.headline(),
        "counts": message.counts(),
        "page_url": page_url + "/",
        "transitions": [
            {**t.as_json(), "url": page_link(page_url, t.service_id)} for t in message.transitions
        ],
    }


class WebhookSink(Sink):
    """POSTs `webhook_body` with an `Idempotency-Key` header (the message's event_id)."""

    type = "webhook"
    #: About 350 KiB of JSON: a storm of more transitions is several messages.
    max_transitions = 1000

    async def send(self, message: Message, ctx: SinkContext) -> Delivery:
        # Made in a thread: 1,000 transitions take tens of milliseconds.
        body = await asyncio.to_thread(webhook_body, message, ctx.page_url)
        return await post_json(
            ctx.session, ctx.url, body, ctx.timeout_s, headers={"Idempotency-Key": message.event_id}
        )
