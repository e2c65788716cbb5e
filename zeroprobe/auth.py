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
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from aiohttp import hdrs, web

AUTH_TOKEN_ENV = "ZEROPROBE_AUTH_TOKEN"
AUTH_TOKEN_FILE_ENV = "ZEROPROBE_AUTH_TOKEN_FILE"
AUTH_PROTECT_ENV = "ZEROPROBE_AUTH_PROTECT"
#: Shorter tokens are refused: guessable, and too short for the redactor to scrub.
MIN_TOKEN_CHARS = 16
REALM = "zeroprobe"
#: One challenge per header line: Chromium reads a WWW-Authenticate line as one challenge,
#: so with "Bearer ..., Basic ..." on one line it would see only Bearer, which it cannot
#: answer, and never ask for Basic credentials.
CHALLENGES = (f'Bearer realm="{REALM}"', f'Basic realm="{REALM}"')
#: Endpoints open without a token unless named in ZEROPROBE_AUTH_PROTECT, by name.
OPEN_ENDPOINTS: Mapping[str, str] = {
    "liveness": "/liveness",
    "livez": "/livez",
    "readyz": "/readyz",
    "metrics": "/metrics",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_UNAUTHORIZED_BODY = json.dumps(
    {
        "error": "a valid token is required: send 'Authorization: Bearer <token>', "
        "or HTTP Basic with the token as password",
        "status": 401,
    }
).encode()


class AuthConfigError(ValueError):
    """The access-control settings cannot be used; the message names the variable."""


def token_from_environ(environ: Mapping[str, str]) -> str | None:
    """The configured token, or None when access control is off.

    Raises AuthConfigError (naming the variable, never quoting the token) when both variables
    are set, the file cannot be read, or the token is empty, too short or not one word.
    """
    value = environ.get(AUTH_TOKEN_ENV)
    path = environ.get(AUTH_TOKEN_FILE_ENV)
    if value is not None and path is not None:
        raise AuthConfigError(
            f"{AUTH_TOKEN_ENV} and {AUTH_TOKEN_FILE_ENV} are both set: set only one"
        )
    if path is not None:
        if not path.strip():
            raise AuthConfigError(f"{AUTH_TOKEN_FILE_ENV} is set but empty: name the token file")
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise AuthConfigError(f"{AUTH_TOKEN_FILE_ENV}: cannot read {path}: {reason}") from None
        try:
            # A secret written with `echo` or an editor ends with a newline: not part of it.
            token = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise AuthConfigError(f"{AUTH_TOKEN_FILE_ENV}: {path} is not UTF-8 text") from None
        return _checked(token, f"{AUTH_TOKEN_FILE_ENV} ({path})")
    if value is not None:
        return _checked(value.strip(), AUTH_TOKEN_ENV)
    return None


def _checked(token: str, source: str) -> str:
    if not token:
        raise AuthConfigError(
            f"{source}: the token is empty; set a token, or unset the variable to turn "
            "access control off"
        )
    if len(token) < MIN_TOKEN_CHARS:
        raise AuthConfigError(
            f"{source}: the token has {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
            "(e.g. `openssl rand -hex 32`)"
        )
    if not all("!" <= char <= "~" for char in token):
        raise AuthConfigError(
            f"{source}: the token must be printable ASCII without spaces (e.g. hex or base64)"
        )
    return token


def protected_from_environ(environ: Mapping[str, str], token: str | None) -> frozenset[str]:
    """The open endpoints ZEROPROBE_AUTH_PROTECT closes (comma-separated names)."""
    raw = environ.get(AUTH_PROTECT_ENV, "").strip()
    if not raw:
        return frozenset()
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in OPEN_ENDPOINTS]
    if unknown:
        raise AuthConfigError(
            f"{AUTH_PROTECT_ENV}: unknown endpoint {unknown[0]!r}; expected a comma-separated "
            f"list of {', '.join(OPEN_ENDPOINTS)}"
        )
    if token is None:
        raise AuthConfigError(
            f"{AUTH_PROTECT_ENV} is set but no token is: set {AUTH_TOKEN_ENV} or "
            f"{AUTH_TOKEN_FILE_ENV} too, or the endpoints stay open"
        )
    return frozenset(names)


def describe(token: str | None, protected: frozenset[str]) -> str:
    """One log line saying what access control does (never the token)."""
    if token is None:
        return (
            f"access control is off: no {AUTH_TOKEN_ENV} or {AUTH_TOKEN_FILE_ENV}, "
            "every endpoint is open"
        )
    still_open = [path for name, path in OPEN_ENDPOINTS.items() if name not in protected]
    where = f"everywhere except {', '.join(still_open)}" if still_open else "on every endpoint"
    return f"access control is on: a token is required {where}"


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
