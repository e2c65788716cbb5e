"""Access-control settings from the environment: the token and the endpoints it closes.

The HTTP layer (web/auth.py) enforces them; they are read here with the other settings so
that a bad value stops start-up with one line naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

AUTH_TOKEN_ENV = "ZEROPROBE_AUTH_TOKEN"
AUTH_TOKEN_FILE_ENV = "ZEROPROBE_AUTH_TOKEN_FILE"
AUTH_PROTECT_ENV = "ZEROPROBE_AUTH_PROTECT"
#: Shorter tokens are refused: guessable, and too short for the redactor to scrub.
MIN_TOKEN_CHARS = 16
#: Endpoints open without a token unless named in ZEROPROBE_AUTH_PROTECT, by name.
OPEN_ENDPOINTS: Mapping[str, str] = {
    "liveness": "/liveness",
    "livez": "/livez",
    "readyz": "/readyz",
    "metrics": "/metrics",
}


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
