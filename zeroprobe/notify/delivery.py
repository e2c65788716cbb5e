"""One delivery attempt over HTTP and what it means: delivered, try again (when), or give up.

Network errors, timeouts, 5xx and 429 are worth another try, after `Retry-After` (or Discord's
`retry_after`) when the receiver says, else after an exponential backoff with jitter. Any
other 4xx is the receiver refusing this message for good: logged, counted, not retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from zeroprobe import __version__

USER_AGENT = f"zeroprobe/{__version__}"
#: Longest part of a refusal's body quoted in the log (after redaction).
MAX_QUOTED_CHARS = 200


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one attempt. `detail` never holds the URL."""

    ok: bool
    retry: bool = False
    retry_after_s: float | None = None
    detail: str = ""


DELIVERED = Delivery(ok=True, detail="delivered")


def backoff_s(attempts: int, initial_s: float, max_s: float) -> float:
    """Wait before try number `attempts` + 1: doubling from `initial_s` up to `max_s`, with
    "equal jitter" (between half and all of it), so that receivers back from an outage are
    not hit by every sender at the same instant."""
    full = float(min(max_s, initial_s * 2 ** max(0, attempts - 1)))
    return full / 2 + random.uniform(0, full / 2)


def retry_after_s(headers: Mapping[str, str], body: bytes = b"") -> float | None:
    """Seconds to wait from `Retry-After` (seconds or an HTTP date), or from the
    `retry_after` of a JSON body (Discord: seconds, a float); the larger when both are given."""
    waits: list[float] = []
    value = headers.get("Retry-After", "").strip()
    if value:
        try:
            waits.append(max(0.0, float(value)))
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(value)
                waits.append(max(0.0, moment.timestamp() - time.time()))
            except (TypeError, ValueError):
                pass
    if body[:1] == b"{":
        try:
            reply = json.loads(body)
        except ValueError:
            reply = None
        after = reply.get("retry_after") if isinstance(reply, dict) else None
        if isinstance(after, int | float) and not isinstance(after, bool) and after >= 0:
            waits.append(float(after))
    return max(waits) if waits else None


def _encode(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def judge(status: int, headers: Mapping[str, str], body: bytes) -> Delivery:
    """What an HTTP answer means for the message."""
    if 200 <= status < 300:
        return DELIVERED
    if status == 429 or status >= 500:
        return Delivery(
            ok=False,
            retry=True,
            retry_after_s=retry_after_s(headers, body),
            detail=f"HTTP {status}",
        )
    text = body[:MAX_QUOTED_CHARS].decode("utf-8", "replace").strip()
    return Delivery(
        ok=False, retry=False, detail=f"HTTP {status}: {text}" if text else f"HTTP {status}"
    )


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    payload: object,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
) -> Delivery:
    """POST `payload` as JSON to `url`; never raises for network trouble, never follows a
    redirect (a webhook URL is a secret, not to be sent on). The JSON is encoded in a thread:
    a storm's body (2,000 alerts: about 900 KiB) would hold up the event loop otherwise."""
    data = await asyncio.to_thread(_encode, payload)
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(
                url,
                data=data,
                headers={
                    "User-Agent": USER_AGENT,
                    "Content-Type": "application/json",
                    **(headers or {}),
                },
                allow_redirects=False,
            ) as response:
                body = await response.content.read(64 * 1024)
                return judge(response.status, response.headers, body)
    except TimeoutError:
        return Delivery(ok=False, retry=True, detail=f"no answer within {timeout_s:g}s")
    except aiohttp.ClientConnectorError as exc:
        errno = exc.os_error.errno
        reason = os.strerror(errno) if errno else "connection failed"
        return Delivery(ok=False, retry=True, detail=f"cannot connect: {reason}")
    except aiohttp.ServerDisconnectedError:
        return Delivery(ok=False, retry=True, detail="the receiver closed the connection")
    except aiohttp.ClientPayloadError:
        return Delivery(ok=False, retry=True, detail="the answer was cut off")
    except aiohttp.ClientError as exc:
        return Delivery(ok=False, retry=True, detail=f"{type(exc).__name__}")
    except OSError as exc:
        return Delivery(ok=False, retry=True, detail=f"network error: {exc.strerror or exc}")
