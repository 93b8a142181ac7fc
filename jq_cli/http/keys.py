"""API keys of the HTTP shim: where they come from, and the one constant-time comparison."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from pathlib import Path

from jq_cli.config import Settings
from jq_cli.errors import InvalidInput
from jq_cli.userfiles import read_user_text


class ApiKeys:
    """The accepted keys, as bytes (headers arrive as bytes). Its repr never shows a key."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = [k.encode("utf-8") for k in keys if k]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self._keys)} keys)"

    def accepts(self, candidate: bytes) -> bool:
        # Compare with every key, never stopping early: the time taken says nothing about which
        # key (or how much of one) matched.
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(key, candidate)
        return ok

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """The keys of JQ_API_KEY and JQ_API_KEYS_FILE. Raises InvalidInput for a file that cannot
        be read or holds no key (starting without auth by accident would be worse than failing)."""
        keys: list[str] = []
        if settings.api_key is not None and settings.api_key.get_secret_value().strip():
            keys.append(settings.api_key.get_secret_value().strip())
        if (
            settings.api_keys_file and settings.api_keys_file.strip()
        ):  # `JQ_API_KEYS_FILE=` means none
            keys.extend(read_keys_file(Path(settings.api_keys_file)))
        return cls(keys)


def read_keys_file(path: Path) -> list[str]:
    keys = [line.strip() for line in read_user_text(path, "JQ_API_KEYS_FILE").splitlines()]
    keys = [k for k in keys if k and not k.startswith("#")]
    if not keys:
        raise InvalidInput(f"JQ_API_KEYS_FILE {path} holds no key")
    return keys
