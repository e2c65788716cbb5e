"""Chat sinks (Slack, Discord, and Apprise's json:// pointed at a loopback fake) and the storm:
500 probes turning RED at once are one message per sink, within each service's limits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.grading import Grade
from tests.notify_fakes import DISCORD_MAX_CONTENT, FakeReceiver, Received, status
from tests.notify_support import PAGE_URL, eventually, harness
from zeroprobe.notify.sinks.base import chat_text
from zeroprobe.notify.sinks.discord import discord_escape, discord_link
from zeroprobe.notify.transitions import Message, Transition


@pytest.fixture
def slack() -> Iterator[FakeReceiver]:
    receiver = FakeReceiver("slack").start()
    yield receiver
    receiver.stop()


@pytest.fixture
def discord() -> Iterator[FakeReceiver]:
    receiver = FakeReceiver("discord").start()
    yield receiver
    receiver.stop()


@pytest.fixture
def apprise_fake() -> Iterator[FakeReceiver]:
    receiver = FakeReceiver("apprise").start()
    yield receiver
    receiver.stop()


@pytest.fixture
def hook() -> Iterator[FakeReceiver]:
    receiver = FakeReceiver("webhook").start()
    yield receiver
    receiver.stop()


def sink_yaml(coalesce: str = "200ms", **sinks: str) -> str:
    lines = [f"coalesce: {coalesce}", "sinks:"]
    for name, kind in sinks.items():
        lines.append(
            f"  - {{name: {name}, type: {kind}, url_env: {name.upper()}_URL, timeout: 2s}}"
        )
    return "\n".join(lines) + "\n"


async def delivered(receiver: FakeReceiver, n: int, timeout_s: float = 15.0) -> list[Received]:
    return await asyncio.to_thread(
        receiver.wait_for, lambda got: sum(r.answered == "ok" for r in got) >= n, timeout_s
    )


async def test_slack_gets_mrkdwn_text_with_links_and_escaped_target_text(
    tmp_path: Path, slack: FakeReceiver
) -> None:
    env = {"TEAM_URL": slack.url}
    async with harness(tmp_path, sink_yaml(team="slack"), env) as h:
        await h.set("payments.api", Grade.RED, "- reply <b>&</b> from db1:27017")
        await delivered(slack, 1)
    (body,) = slack.delivered()
    text = body["text"]
    assert text.startswith("*zeroprobe: payments.api is RED (was GREEN)*")
    assert f"<{PAGE_URL}/ui/payments.api|payments.api> is RED" in text
    assert "reply &lt;b&gt;&amp;&lt;/b&gt; from db1:27017" in text
    assert body["unfurl_links"] is False


async def test_slack_429_waits_for_retry_after(tmp_path: Path, slack: FakeReceiver) -> None:
    slack.then(status(429, retry_after_s=1))
    async with harness(tmp_path, sink_yaml(team="slack"), {"TEAM_URL": slack.url}) as h:
        await h.set("payments.api", Grade.RED)
        first, second = await delivered(slack, 1)
    assert (first.answered, second.answered) == ("429", "ok")
    assert second.at - first.at >= 0.95


async def test_discord_429_honours_retry_after_in_the_body(
    tmp_path: Path, discord: FakeReceiver
) -> None:
    # Discord's body says 1.6 s; its Retry-After header says 2 (whole seconds).
    discord.then(status(429, retry_after_s=1.6))
    async with harness(tmp_path, sink_yaml(chat="discord"), {"CHAT_URL": discord.url}) as h:
        await h.set("payments.api", Grade.YELLOW)
        first, second = await delivered(discord, 1)
    assert second.at - first.at >= 1.9
    body = second.body
    assert body["allowed_mentions"] == {"parse": []}
    assert "payments.api" in body["content"]


def test_discord_text_cannot_ping_or_format() -> None:
    t = Transition("e", "x", "k", None, Grade.RED, 0, "s", ("- @everyone *bold* `code`",))
    text = chat_text(
        Message(1, "s", "m", 0, 0, 0, (t,)), PAGE_URL, 2000, discord_link, discord_escape
    )
    assert "@everyone" not in text and "@\u200beveryone" in text
    assert "\\*bold\\*" in text and "\\`code\\`" in text


async def test_apprise_delivers_through_its_json_scheme_to_loopback(
    tmp_path: Path, apprise_fake: FakeReceiver
) -> None:
    apprise_fake.then(status(500))  # Apprise says only "failed": retried like a 5xx
    env = {"OPS_URL": apprise_fake.apprise_url}
    async with harness(tmp_path, sink_yaml(ops="apprise"), env) as h:
        await h.set("payments.api", Grade.RED, "- queue depth 12000")
        got = await delivered(apprise_fake, 1)
        (_, _, stats) = next(h.notifier.sink_stats())
        await eventually(lambda: stats.sent == 1)
        assert stats.retried == 1
    body = got[-1].body
    assert body["title"] == "zeroprobe: payments.api is RED (was GREEN)"
    assert "queue depth 12000" in body["message"]
    assert f"({PAGE_URL}/ui/payments.api)" in body["message"]


async def test_a_storm_of_500_red_probes_is_one_message_per_sink(
    tmp_path: Path,
    hook: FakeReceiver,
    slack: FakeReceiver,
    discord: FakeReceiver,
    apprise_fake: FakeReceiver,
) -> None:
    ids = [f"shop.svc{n:03d}" for n in range(500)]
    env = {
        "HOOK_URL": hook.url,
        "TEAM_URL": slack.url,
        "CHAT_URL": discord.url,
        "OPS_URL": apprise_fake.apprise_url,
    }
    yaml = sink_yaml("2s", hook="webhook", team="slack", chat="discord", ops="apprise")
    async with harness(tmp_path, yaml, env, ids) as h:
        await h.set_all(ids, Grade.GREEN)
        await h.set_all(ids, Grade.RED)  # the network dropped
        for receiver in (hook, slack, discord, apprise_fake):
            await delivered(receiver, 1)
        await asyncio.sleep(2.5)  # nothing else follows
        assert all(row.pending == 0 for row in h.notifier.health())
    for receiver in (hook, slack, discord, apprise_fake):
        assert len(receiver.got()) == 1, receiver.flavour
    (webhook_body,) = hook.delivered()
    assert len(webhook_body["transitions"]) == 500
    assert webhook_body["headline"] == "zeroprobe: 500 RED"
    content = discord.delivered()[0]["content"]
    assert len(content) <= DISCORD_MAX_CONTENT
    assert "more: [the status page]" in content
    assert len(slack.delivered()[0]["text"]) <= 3000
