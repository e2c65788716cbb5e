"""Removing credentials from text before it reaches a response, a log line or a metric.

One `Redactor` per process is shared by the log handler, the probes, the result lines, the
metrics, the status page and the CLI's output. It scrubs (1) every secret value it was told
about, in the forms the value travels in (as written, percent-encoded, and for a URI's
user:password the base64 of a Basic header) and (2) anything shaped like a credential
whatever its value: `scheme://user:password@`, `Authorization:` / `PRIVATE-TOKEN:` /
`X-Api-Key:` headers, `Bearer <token>`, `password=` / `token=` parameters and the token
shapes of GitHub and GitLab.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus, unquote, urlsplit

# scheme://user:password@host -> scheme://***@host, whatever the scheme. Greedy up to the last
# '@' of the authority, so that an unescaped '@' in a password does not leave its tail behind.
_URI_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s'\"]+)@")
# The same, percent-encoded as a whole (a URI quoted inside a query string or a JSON value).
_ENCODED_URI_USERINFO = re.compile(r"(?i)([A-Za-z][A-Za-z0-9+.-]*%3A%2F%2F)([^/\s'\"&]+?)%40")
_LOOSE_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<userinfo>\S*)@[^@]*$")
_AUTH_HEADER = re.compile(
    # The optional quotes also catch a header dict: {'Authorization': 'Bearer ...'}.
    r"(?i)\b(authorization|proxy-authorization|private-token|x-api-key|job-token)"
    r"(['\"]?\s*[:=]\s*['\"]?)"
    r"([^\s,'\"]+(?:\s+[^\s,'\"]+)?)"
)
# A token has a digit somewhere; "Bearer authentication" is prose.
_BEARER = re.compile(r"(?i)\b(bearer)\s+(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}")
_TOKEN_PARAM = re.compile(
    r"(?i)\b([A-Za-z_-]*(?:password|passwd|pwd|token|api_?key|secret))=([^&\s'\"]+)"
)
# Token shapes that are secrets whatever their value: GitHub (classic and fine-grained) and
# GitLab personal/project/pipeline tokens.
_TOKEN_SHAPES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|gl(?:pat|ptt|dt|rt)-[A-Za-z0-9_-]{16,})"
)

REDACTED = "***"
CONNECTION_ENV_PREFIX = "ZEROPROBE_CONNECTION_"
AUTH_TOKEN_ENV = "ZEROPROBE_AUTH_TOKEN"
# Other variables whose values are treated as secrets, by name: CI tokens a pipeline spec names
# in bearer_token_env, API keys. Values shorter than SECRET_BY_NAME_MIN_CHARS or made of digits
# only (a TTL, a port) are left alone: scrubbing "3600" would garble lag figures.
_SECRET_NAME = re.compile(r"(?i)(token|secret|passw(or)?d|api_?key|credential|private_?key)")
SECRET_BY_NAME_MIN_CHARS = 8
# Short values would scrub ordinary words; the patterns cover their usual places.
MIN_SECRET_CHARS = 4
#: Texts up to this long are remembered with their scrubbed form, up to MEMO_ENTRIES of them:
#: the same error text comes back from every probe of a failing target (1,000 at once), and
#: scrubbing it costs a dozen scans.
MEMO_TEXT_CHARS = 1024
MEMO_ENTRIES = 4096


def secret_forms(secret: str) -> set[str]:
    """`secret` as it may travel: as written, percent-encoded, and for a URI with user:password
    its password (raw and decoded), `user:password`, and the base64 of a Basic header."""
    forms = {secret}
    try:
        parts = urlsplit(secret)
        # A userinfo is only looked for in something shaped like a URI with an authority.
        password = parts.password if parts.netloc else None
        username = parts.username if parts.netloc else None
    except ValueError:
        password = username = None
    # An unescaped '#', '?' or '/' in a password fools urlsplit: take the userinfo up to the
    # last '@' as well, the way a careless URI is usually meant.
    loose = _LOOSE_USERINFO.match(secret)
    if loose and ":" in loose["userinfo"]:
        loose_user, loose_password = loose["userinfo"].split(":", 1)
        if loose_password != password:
            forms.update(
                secret_forms(f"scheme://{quote(loose_user)}:{quote(loose_password, safe='')}@h")
            )
            forms.discard(f"scheme://{quote(loose_user)}:{quote(loose_password, safe='')}@h")
    if "://" not in secret and ":" in secret:
        # user:token (a Jenkins API token): the token alone travels too. Not host:port.
        rest = secret.split(":", 1)[1]
        if len(rest) >= SECRET_BY_NAME_MIN_CHARS and not rest.isdigit():
            forms.add(rest)
    if password:
        raw = password
        decoded = unquote(raw)
        forms.update({raw, decoded})
        for user in {username or "", unquote(username or "")}:
            for pw in {raw, decoded}:
                pair = f"{user}:{pw}"
                forms.add(pair)
                forms.add(base64.b64encode(pair.encode()).decode("ascii"))
    for value in list(forms):
        forms.update({quote(value, safe=""), quote_plus(value, safe="")})
    # A token or a password may also travel base64-encoded (an echoed Basic header).
    for value in {secret, password or "", unquote(password or "")} - {""}:
        forms.add(base64.b64encode(value.encode()).decode("ascii"))
    return forms


class Redactor:
    """Scrubs known secret values and anything shaped like a credential."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self._known: set[str] = set()
        self._memo: dict[str, str] = {}  # text -> scrubbed text, for the secrets known now
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Remember a secret value (and the forms it travels in) to scrub wherever it appears."""
        secret = secret.strip()  # a token file's trailing newline is not part of the token
        if not secret or secret in self._known:
            return
        self._known.add(secret)
        fresh = [
            value
            for value in secret_forms(secret)
            if len(value) >= MIN_SECRET_CHARS and value not in self._secrets
        ]
        if fresh:
            # Longest first, so a URI is replaced whole before its password alone.
            self._secrets = sorted([*self._secrets, *fresh], key=len, reverse=True)
            self._memo = {}  # scrubbed without the new secret

    def __call__(self, text: str) -> str:
        memo = self._memo  # one dict throughout: add() may start a new one meanwhile
        scrubbed = memo.get(text)
        if scrubbed is None:
            scrubbed = self._scrub(text)
            if len(text) <= MEMO_TEXT_CHARS:
                if len(memo) >= MEMO_ENTRIES:
                    memo = self._memo = {}
                memo[text] = scrubbed
        return scrubbed

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "%" in text:
            text = _ENCODED_URI_USERINFO.sub(lambda m: f"{m[1]}{REDACTED}%40", text)
        if "://" in text:
            text = _URI_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
        text = _AUTH_HEADER.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
        text = _BEARER.sub(lambda m: f"{m[1]} {REDACTED}", text)
        text = _TOKEN_SHAPES.sub(REDACTED, text)
        if "=" in text:
            text = _TOKEN_PARAM.sub(lambda m: f"{m[1]}={REDACTED}", text)
        return text

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Redactor:
        """A redactor that knows every ZEROPROBE_CONNECTION_* value of `environ`, the auth token,
        and the value of every variable named like a secret (…_TOKEN, …_PASSWORD, …_API_KEY)."""
        return cls(v for k, v in environ.items() if v.strip() and is_secret_variable(k, v))


def is_secret_variable(name: str, value: str) -> bool:
    """Whether the value of environment variable `name` is treated as a secret."""
    if name.startswith(CONNECTION_ENV_PREFIX) or name == AUTH_TOKEN_ENV:
        return True
    value = value.strip()
    return (
        _SECRET_NAME.search(name) is not None
        and len(value) >= SECRET_BY_NAME_MIN_CHARS
        and not value.isdigit()
        and value.lower() not in ("true", "false")
    )


#: Spec fields that name an environment variable holding a token.
TOKEN_ENV_FIELDS = ("bearer_token_env", "token_env")


def learn_spec_secrets(
    redactor: Redactor,
    specs: Iterable[object],
    environ: Mapping[str, str],
    kinds: Mapping[str, object] | None = None,
) -> None:
    """Teach `redactor` the secret of every variable a spec names (bearer_token_env,
    token_env, and the `secret_env_fields` its kind declares) before any probe runs: a target
    may echo another probe's token in a line stored earlier."""
    for spec in specs:
        kind = (kinds or {}).get(str(getattr(spec, "kind", "")))
        names = (*TOKEN_ENV_FIELDS, *getattr(kind, "secret_env_fields", ()))
        for name in names:
            variable = getattr(spec, name, None)
            value = environ.get(variable, "").strip() if isinstance(variable, str) else ""
            if value:
                redactor.add(value)


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs the message, any traceback and any stack of a record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record, nor leak its args
            message = f"{record.msg} (log arguments could not be formatted)"
        record.msg = self._redact(message)
        record.args = None
        if record.exc_info or record.exc_text:
            # Always re-scrub: another handler may have formatted the traceback already.
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
            record.exc_text = self._redact(text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True
