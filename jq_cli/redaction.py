"""Passwords out of every output: service URLs and DSNs masked, and any text (an error, a driver's
message, a log line, a traceback) cleared of the passwords of the URLs this process was given.

A password may sit in a URL's user info (unencoded `#`, `/`, `?` or `@` included: drivers then
misparse the URL and quote pieces of it), in its query (`?password=`, `sslpassword=`), or in a
libpq key=value DSN (`host=db password=… dbname=jq`, quoted or not). Each form is masked here, by
reading the text as its most careless writer would, so that a malformed value is masked whole.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import unquote

MASK = "***"
_SCHEME = re.compile(r"^\s*[a-z][a-z0-9+.-]*://", re.IGNORECASE)
# A URL's query parameter that holds a password (libpq's password and sslpassword, Redis's
# password): its value runs to the next `&`.
_QUERY_SECRET = re.compile(r"((?:^|[?&;])[a-z_]*password=)([^&]*)", re.IGNORECASE)
# A key=value DSN's password: a quoted value, or everything up to the next `key=` (an unquoted
# value with a space in it is still the password its writer meant).
_DSN_SECRET = re.compile(
    r"(\b[a-z_]*password\s*=\s*)('(?:[^'\\]|\\.)*'?|.*?(?=\s+[a-z_]+\s*=|\s*$))",
    re.IGNORECASE | re.DOTALL,
)
# Pieces of a password a driver may quote after misparsing its URL, split where parsers split.
_PIECES = re.compile(r"[#/?@:&;=\s'\"]+")
_QUOTED = re.compile(r"'([^'\n]*)'|\"([^\"\n]*)\"")
MIN_PIECE = 4  # shorter unquoted pieces would mask ordinary words of a message
# Several URLs in one setting (a RabbitMQ cluster's nodes): split only at a comma that starts
# another URL, so a comma inside one URL (its password, its query) is never a separator.
_NEXT_URL = re.compile(r",\s*(?=[a-z][a-z0-9+.-]*://)", re.IGNORECASE)


def split_urls(value: str) -> list[str]:
    """The URLs of a setting that accepts a comma-separated list (one URL: a list of one). Here
    rather than in config.py: the CLI loads this module at start, without pydantic."""
    return [u.strip() for u in _NEXT_URL.split(value) if u.strip()]


def mask_url(url: str) -> str:
    """The URL, several comma-separated URLs, or key=value DSN, with every password replaced by
    ***, fit for messages and logs. A multi-host PostgreSQL URL is one URL to this."""
    if not _SCHEME.match(url):
        return _DSN_SECRET.sub(lambda m: m.group(1) + MASK, url)
    return ",".join(_mask_one(u) for u in split_urls(url))


def _mask_one(url: str) -> str:
    scheme, _, rest = url.partition("://")
    # The user info ends at the last `@`: a password's own `#`, `/`, `?` or `@` stays inside it.
    info, at, host = rest.rpartition("@")
    if at and ":" in info:
        user = info.split(":", 1)[0]
        rest = f"{user}:{MASK}@{host}"
    return f"{scheme}://{_QUERY_SECRET.sub(lambda m: m.group(1) + MASK, rest)}"


def secrets_in(url: str) -> set[str]:
    """The passwords `url` holds (as written and percent-decoded), for redact()."""
    found: set[str] = set()
    if _SCHEME.match(url):
        for one in split_urls(url):
            info, at, _ = one.partition("://")[2].rpartition("@")
            if at and ":" in info:
                found.add(info.split(":", 1)[1])
            found.update(m.group(2) for m in _QUERY_SECRET.finditer(one))
    else:
        for m in _DSN_SECRET.finditer(url):
            value = m.group(2)
            found.add(value)
            if value[:1] == "'":
                found.add(value[1:].removesuffix("'").replace("\\'", "'").replace("\\\\", "\\"))
    found |= {unquote(s) for s in found}
    return {s for s in found if s and s != MASK}


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` without any of `secrets`: each whole, each piece of at least MIN_PIECE characters
    between the places parsers split a URL, and any quoted fragment of one (drivers quote what
    they could not parse: "… as 'ab'")."""
    secrets = [s for s in secrets if s]
    if not secrets:
        return text
    pieces = {p for s in secrets for p in _PIECES.split(s) if len(p) >= MIN_PIECE}
    for secret in sorted({*secrets, *pieces}, key=len, reverse=True):
        text = text.replace(secret, MASK)

    def quoted(m: re.Match[str]) -> str:
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        if inner and any(inner in s for s in secrets):
            return m.group(0)[0] + MASK + m.group(0)[-1]
        return m.group(0)

    return _QUOTED.sub(quoted, text)


class _Known:
    """The passwords of every URL this process has loaded settings with: what redact_known()
    clears from error lines and log records, wherever they were written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()

    def add(self, urls: Iterable[str]) -> None:
        found = {s for url in urls for s in secrets_in(url)}
        with self._lock:
            self._secrets = self._secrets | found

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)


KNOWN = _Known()


def remember(urls: Iterable[str]) -> None:
    """Note the passwords of these URLs, for redact_known()."""
    KNOWN.add(urls)


def redact_known(text: str) -> str:
    """`text` without the password of any URL given to remember()."""
    return KNOWN.redact(text)


class RedactingFilter(logging.Filter):
    """A handler's filter that clears known passwords from each record's message and traceback
    before any formatter sees it (a driver's exception text may quote a DSN)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_known(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_known(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_known(record.stack_info)
        return True
