"""Access control: an optional shared token, required on everything but the health endpoints.

The token comes from ZEROPROBE_AUTH_TOKEN, or from the file named by
ZEROPROBE_AUTH_TOKEN_FILE (a mounted Kubernetes secret). A client sends it as
`Authorization: Bearer <token>`, or as HTTP Basic with the token as password and any user
name: a browser cannot add a bearer header to a navigation, but it asks for Basic
credentials itself, caches them for the realm and sends them again with the page's fetches.

The check is a per-route wrapper (`TokenGate.protect`), not a middleware: an aiohttp
middleware costs every request, the PUT of the monitoring system included, even with no token
configured. With no token no route is wrapped at all.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

REALM = "zeroprobe"
#: One challenge per header line: Chromium reads a WWW-Authenticate line as one challenge,
#: so with "Bearer ..., Basic ..." on one line it would see only Bearer, which it cannot
#: answer, and never ask for Basic credentials.
CHALLENGES = (f'Bearer realm="{REALM}"', f'Basic realm="{REALM}"')
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_UNAUTHORIZED_BODY = json.dumps(
    {
        "error": "a valid token is required: send 'Authorization: Bearer <token>', "
        "or HTTP Basic with the token as password",
        "status": 401,
    }
).encode()


class TokenGate:
    """Checks the Authorization header of a request against the token, in constant time."""

    __slots__ = ("_bearer", "_token")

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._bearer = b"Bearer " + self._token

    def __repr__(self) -> str:
        return "TokenGate(***)"

    def allows(self, authorization: str | None) -> bool:
        """True when `authorization` carries the token as Bearer or as a Basic password."""
        if not authorization:
            return False
        # The usual header first: one encode and one comparison per request.
        if hmac.compare_digest(authorization.encode("utf-8", "surrogateescape"), self._bearer):
            return True
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer":
            offered = credentials.encode("utf-8", "surrogateescape")
        elif scheme == "basic":
            try:
                decoded = base64.b64decode(credentials.encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError):
                return False
            offered = decoded.partition(b":")[2]
        else:
            return False
        return hmac.compare_digest(offered, self._token)

    def protect(self, handler: Handler) -> Handler:
        """`handler`, answering 401 instead when the request lacks the token."""

        async def with_token(request: web.Request) -> web.StreamResponse:
            if not self.allows(request.headers.get(hdrs.AUTHORIZATION)):
                return unauthorized()
            return await handler(request)

        with_token.__doc__ = handler.__doc__
        return with_token


def unauthorized() -> web.Response:
    """401 with the JSON error document and one challenge per scheme. What the client sent is
    never echoed."""
    response = web.Response(body=_UNAUTHORIZED_BODY, status=401, content_type="application/json")
    for challenge in CHALLENGES:
        response.headers.add(hdrs.WWW_AUTHENTICATE, challenge)
    return response


def gate_for(token: str | None) -> TokenGate | None:
    """A gate for `token`; None when access control is off."""
    return TokenGate(token) if token is not None else None
