"""API keys of `jq serve` and `jq top --web`: where they come from, the one constant-time
comparison, and the rule that binding beyond loopback needs one."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from pathlib import Path

from jq_cli.config import Settings
from jq_cli.errors import InvalidInput
from jq_cli.userfiles import read_user_text

LOOPBACK = "127.0.0.1"


class ApiKeys:
    """The accepted keys, as bytes (headers arrive as bytes), each with a name the audit log
    records as the "who" of a request. Its repr never shows a key."""

    def __init__(self, keys: Iterable[str | tuple[str, str]] = ()) -> None:
        self._keys: list[tuple[str, bytes]] = []
        for item in keys:
            name, key = item if isinstance(item, tuple) else (None, item)
            if key:
                self._keys.append((name or key_name(key), key.encode("utf-8")))

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self._keys)} keys)"

    def accepts(self, candidate: bytes) -> bool:
        return self.name_of(candidate) is not None

    def name_of(self, candidate: bytes) -> str | None:
        """The name of the key `candidate` is, or None."""
        # Compare with every key, never stopping early: the time taken says nothing about which
        # key (or how much of one) matched.
        found = None
        for name, key in self._keys:
            if hmac.compare_digest(key, candidate):
                found = name
        return found

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """The keys of JQ_API_KEY (named JQ_API_KEY) and JQ_API_KEYS_FILE. Raises InvalidInput
        for a file that cannot be read or holds no key (starting without auth by accident would
        be worse than failing)."""
        keys: list[tuple[str, str]] = []
        if settings.api_key is not None and settings.api_key.get_secret_value().strip():
            keys.append(("JQ_API_KEY", settings.api_key.get_secret_value().strip()))
        if (
            settings.api_keys_file and settings.api_keys_file.strip()
        ):  # `JQ_API_KEYS_FILE=` means none
            keys.extend(read_named_keys_file(Path(settings.api_keys_file)))
        return cls(keys)


def key_name(key: str) -> str:
    """The name of an unnamed key: a short digest, which says which key without revealing it."""
    return "key-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def read_named_keys_file(path: Path) -> list[tuple[str, str]]:
    """One key a line, `KEY` or `NAME KEY` (the name the audit log records for its requests;
    an unnamed key is named by a digest of it). Blank lines and # comments are skipped."""
    keys: list[tuple[str, str]] = []
    for line in read_user_text(path, "JQ_API_KEYS_FILE").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, key = line.rpartition(" ")
        keys.append((name.strip() or key_name(key), key))
    if not keys:
        raise InvalidInput(f"JQ_API_KEYS_FILE {path} holds no key")
    return keys


def choose_host(host: str | None, keys: ApiKeys, command: str = "jq serve") -> str:
    """Loopback by default. Without a key, refuse any other address: an open queue on the network
    would take jobs (or operator actions) from anyone. Raises InvalidInput."""
    if host is None:
        return LOOPBACK
    if not keys and not is_loopback(host):
        raise InvalidInput(
            f"refusing to listen on {host} without an API key: set JQ_API_KEY or "
            f"JQ_API_KEYS_FILE (without one {command} listens on 127.0.0.1 only)"
        )
    return host


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
