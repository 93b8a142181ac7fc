"""The outcome sanitiser: whatever a handler returns, raises or reports becomes something
PostgreSQL can store before it joins a batch, so one job's outcome never fails another's.

PostgreSQL refuses NaN and ±Infinity in jsonb, NUL characters in text and jsonb, and lone
surrogates anywhere (they are not UTF-8). A result that holds any of these, is not JSON at all,
or is larger than JQ_MAX_RESULT_BYTES fails its attempt with an error naming the problem.
Error messages and tracebacks are the record of a failure, so they are kept: NUL and lone
surrogates are escaped (`\\x00`, `\\ud800`) and text past JQ_MAX_ERROR_BYTES is cut, saying so.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any

from jq_cli.store.records import Finish

# A JSON \u0000 escape preceded by an even number of backslashes (zero included): a NUL that
# json.dumps wrote. An odd number means the backslash itself was escaped and the text is literal.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_TRUNCATED = "\n… [cut: {over} more bytes past the cap of {limit} (JQ_MAX_ERROR_BYTES)]"


class Unstorable(ValueError):
    """A handler's output PostgreSQL cannot store; the message names the problem."""


@dataclass(frozen=True)
class SizeCaps:
    max_result_bytes: int = 1_048_576
    max_error_bytes: int = 65_536


def _refuse_type(value: object) -> Any:
    raise TypeError(f"a {type(value).__name__} is not JSON (use dict, list, str, int, float, bool)")


def encode_result(value: Any, caps: SizeCaps) -> str:
    """The result as JSON text for a jsonb column. Raises Unstorable naming what is wrong."""
    try:
        text = json.dumps(
            value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_refuse_type
        )
    except ValueError as exc:  # allow_nan=False: "Out of range float values are not JSON compliant"
        raise Unstorable(
            f"result holds NaN or Infinity, which PostgreSQL's jsonb cannot store ({exc})"
        ) from None
    except TypeError as exc:
        raise Unstorable(f"result is not JSON: {exc}") from None
    except RecursionError:
        raise Unstorable("result is nested too deeply to encode as JSON") from None
    if _NUL_ESCAPE.search(text):
        raise Unstorable("result holds a NUL character, which PostgreSQL cannot store")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise Unstorable("result holds a lone surrogate: it is not valid Unicode") from None
    if size > caps.max_result_bytes:
        raise Unstorable(
            f"result is {size} bytes, more than the cap of {caps.max_result_bytes} "
            "(JQ_MAX_RESULT_BYTES)"
        )
    return text


def clean_text(text: str | None, limit: int) -> str | None:
    """Text PostgreSQL can store: NUL and lone surrogates escaped, cut at `limit` bytes."""
    if text is None:
        return None
    if not isinstance(text, str):  # defensive: a str subclass or worse from a handler's __str__
        text = str.__str__(text) if isinstance(text, str) else repr(type(text))
    text = text.replace("\x00", "\\x00")
    data = text.encode("utf-8", "backslashreplace")
    if len(data) > limit:
        note = _TRUNCATED.format(over=len(data) - limit, limit=limit)
        data = data[: max(0, limit - len(note.encode()))]
        return data.decode("utf-8", "ignore") + note
    return data.decode("utf-8")


def check_progress(percent: Any, message: Any, limit: int) -> tuple[float, str | None]:
    """A progress report PostgreSQL can store. Raises ValueError naming what it cannot."""
    try:
        value = float(percent)
    except (TypeError, ValueError):
        raise ValueError(
            f"progress percent must be a number, got {type(percent).__name__}"
        ) from None
    if not math.isfinite(value):
        raise ValueError(
            f"progress percent is NaN or Infinity ({value}): it must be a finite number"
        )
    if message is None:
        return max(0.0, min(100.0, value)), None
    if not isinstance(message, str):
        raise ValueError(
            f"progress message is not JSON text: a {type(message).__name__}, not a str"
        )
    if "\x00" in message:
        raise ValueError("progress message holds a NUL character, which PostgreSQL cannot store")
    try:
        size = len(message.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(
            "progress message holds a lone surrogate: it is not valid Unicode"
        ) from None
    if size > limit:
        raise ValueError(
            f"progress message is {size} bytes, more than the cap of {limit} (JQ_MAX_ERROR_BYTES)"
        )
    return max(0.0, min(100.0, value)), message


def sanitise(finish: Finish, caps: SizeCaps) -> Finish:
    """The last gate before a batch: every field of the outcome is storable."""
    retry_in = finish.retry_in
    if retry_in is not None and not (isinstance(retry_in, float | int) and math.isfinite(retry_in)):
        retry_in = 0.0
    result = finish.result_json
    if result is not None and not isinstance(result, str):
        result = None
    return replace(
        finish,
        result_json=result,
        error=clean_text(finish.error, caps.max_error_bytes),
        traceback=clean_text(finish.traceback, caps.max_error_bytes),
        retry_in=None if retry_in is None else max(0.0, float(retry_in)),
    )
