"""Files a user names (payloads, bulk jobs, schedules, API keys): read as UTF-8 text, or one clear
InvalidInput naming the file, never a traceback."""

from __future__ import annotations

from pathlib import Path

from jq_cli.errors import InvalidInput


def read_user_text(path: str | Path, what: str) -> str:
    """The text of `path`; `what` names the file in errors ("payload file", "JQ_API_KEYS_FILE")."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{what} {path} is not UTF-8 text") from None
