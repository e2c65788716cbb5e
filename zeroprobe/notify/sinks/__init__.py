"""Direct sinks, one module per type (Gatus' alerting/provider layout): each turns a message
into its service's request and judges the answer. `SINK_TYPES` maps a `type:` to its class."""

from __future__ import annotations

from zeroprobe.notify.sinks.apprise import AppriseSink
from zeroprobe.notify.sinks.base import Sink, SinkContext
from zeroprobe.notify.sinks.discord import DiscordSink
from zeroprobe.notify.sinks.slack import SlackSink
from zeroprobe.notify.sinks.webhook import WebhookSink

SINK_TYPES: dict[str, type[Sink]] = {
    "webhook": WebhookSink,
    "slack": SlackSink,
    "discord": DiscordSink,
    "apprise": AppriseSink,
}

__all__ = ["SINK_TYPES", "Sink", "SinkContext"]
