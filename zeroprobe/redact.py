"""Removing credentials from text before it reaches a response, a log line or a metric."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

# scheme://user:password@host -> scheme://***@host, whatever the scheme. Greedy up to the last
# '@' of the authority, so that an unescaped '@' in a password does not leave its tail behind.
_URI_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s'\"]+)@")
_AUTH_HEADER = re.compile(
    # The optional quotes also catch a header dict: {'Authorization': 'Bearer ...'}.
    r"(?i)\b(authorization|private-token|x-api-key)(['\"]?\s*[:=]\s*['\"]?)"
    r"([^\s,'\"]+(?:\s+[^\s,'\"]+)?)"
)
_TOKEN_PARAM = re.compile(
    r"(?i)\b(password|passwd|pwd|token|access_token|api_key|secret)=([^&\s'\"]+)"
)

REDACTED = "***"
CONNECTION_ENV_PREFIX = "ZEROPROBE_CONNECTION_"


class Redactor:
    """Scrubs known secret values and anything shaped like a credential."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Remember a secret value (and, for a URI, its password) to scrub wherever it appears."""
        candidates = {secret}
        try:
            parts = urlsplit(secret)
            if parts.password:
                candidates.update({parts.password, unquote(parts.password)})
            if parts.username and parts.password:
                candidates.add(f"{parts.username}:{parts.password}")
        except ValueError:
            pass
        for value in candidates:
            # Very short values would scrub ordinary words; the patterns cover their usual places.
            if len(value) >= 4 and value not in self._secrets:
                self._secrets.append(value)
        self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _URI_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
        text = _AUTH_HEADER.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
        return _TOKEN_PARAM.sub(lambda m: f"{m[1]}={REDACTED}", text)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Redactor:
        """A redactor that knows every ZEROPROBE_CONNECTION_* value of `environ`."""
        return cls(v for k, v in environ.items() if k.startswith(CONNECTION_ENV_PREFIX) and v)


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs the message and any traceback of a record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._redact(logging.Formatter().formatException(record.exc_info))
        return True
