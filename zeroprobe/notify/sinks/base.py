"""What every sink shares: the interface, and the chat text that fits a length limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from zeroprobe.notify.delivery import Delivery
from zeroprobe.notify.transitions import Message, Transition, page_link, worst_first

#: Lines of a probe's actionBody shown per transition in a chat message.
CHAT_LINES_PER_TRANSITION = 3


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What a send needs besides the message: the shared HTTP session, the sink's URL (a
    secret: never logged, never in a Delivery's detail), and where the status page is."""

    session: aiohttp.ClientSession
    url: str = field(repr=False)
    page_url: str
    timeout_s: float


class Sink:
    """One sink type. `max_transitions` caps what one message carries (more make more
    messages); chat texts stay within `max_chars`."""

    type = ""
    #: A chat message is cut to `max_chars` anyway: everything pending is one message.
    max_transitions = 100_000
    max_chars = 4000

    async def send(self, message: Message, ctx: SinkContext) -> Delivery:
        """Deliver `message` once; the outcome (never raises for the receiver's trouble)."""
        raise NotImplementedError


MARKS = {"RED": "🔴", "YELLOW": "🟡", "GREEN": "🟢"}


def chat_text(
    message: Message,
    page_url: str,
    max_chars: int,
    link: Callable[[str, str], str],
    escape: Callable[[str], str] = str,
) -> str:
    """A chat message: a headline, then per transition (worst first) its colour, probe (a link
    to its page), what it was, and the lines that explain it; cut to `max_chars` with a
    closing line that says how many more there are and links the problems on the page."""
    head = f"**{escape(message.headline())}**"
    ordered = worst_first(message.transitions)
    text = head
    # Blocks are made one at a time: of a storm's 2,000 transitions, 20 fit.
    for index, transition in enumerate(ordered):
        block = _block(transition, page_url, link, escape)
        rest = len(ordered) - index
        more = f"\n…and {rest} more: " + link(f"{page_url}/?only=problems", "the status page")
        candidate = f"{text}\n{block}"
        # Room must remain for the closing line whenever something is left out.
        reserve = 0 if rest == 1 else len(more) + 1
        if len(candidate) + reserve > max_chars:
            tail = more if len(text) + len(more) <= max_chars else ""
            return text + tail
        text = candidate
    return text[:max_chars]


def _block(
    t: Transition, page_url: str, link: Callable[[str, str], str], escape: Callable[[str], str]
) -> str:
    probe = link(page_link(page_url, t.service_id), escape(t.service_id))
    if t.recovered:
        first = f"{MARKS['GREEN']} {probe} recovered: GREEN (was {t.was})"
    else:
        first = f"{MARKS[t.new.value]} {probe} is {t.new.value} (was {t.was})"
    lines = [escape(line if line.startswith("- ") else f"- {line}") for line in t.lines]
    shown = lines[:CHAT_LINES_PER_TRANSITION]
    if len(lines) > len(shown):
        shown.append(f"- …{len(lines) - len(shown)} more line(s) on its page")
    return "\n".join([first, *(f"  {line}" for line in shown)])
