"""Job types that return, raise or report what PostgreSQL cannot store, hang, or ignore
cancellation: the poison the worker must survive (tests/test_poison*.py, test_time_limits.py,
the chaos suite). Payloads are plain JSON; the handler builds the poison from a description,
since a payload itself can never hold it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jq_cli import JobContext, Retry, Snooze, job
from pydantic import BaseModel, field_validator

POISONS = ("none", "nan", "inf", "-inf", "nul", "surrogate", "object", "big")
PLACES = ("result", "error", "progress")


def poison(kind: str, size: int) -> Any:
    """A value holding `kind` of poison (`size` bytes for `big`)."""
    return {
        "none": "fine",
        "nan": float("nan"),
        "inf": float("inf"),
        "-inf": float("-inf"),
        "nul": "a\x00b",
        "surrogate": "a\ud800b",
        "object": {1, 2},
        "big": "x" * size,
    }[kind]


def poison_text(kind: str, size: int) -> str:
    value = poison(kind, size)
    return value if isinstance(value, str) else f"value {value!r}"


@job("t_poison", max_retries=0)
def t_poison(payload: dict, ctx: JobContext) -> Any:
    """Puts poison of `kind` in its result, exception message or progress report (`where`)."""
    kind, where, size = payload["kind"], payload["where"], int(payload.get("size", 0))
    if where == "progress":
        if kind in ("nan", "inf", "-inf"):
            ctx.progress(poison(kind, size))
        elif kind == "object":
            ctx.progress(50, poison(kind, size))
        else:
            ctx.progress(50, poison_text(kind, size))
        return {"reported": kind, "base": payload.get("base")}
    if where == "error":
        raise RuntimeError(poison_text(kind, size))
    return {"value": poison(kind, size), "base": payload.get("base")}


class PickyPayload(BaseModel):
    n: int

    @field_validator("n")
    @classmethod
    def _lookup(cls, value: int) -> int:
        if value < 0:
            raise KeyError(f"no entry for {value}")  # a bug, not a ValidationError
        return value


@job("t_picky", payload=PickyPayload, max_retries=0)
def t_picky(payload: PickyPayload, ctx: JobContext) -> dict:
    """Its payload model's validator raises KeyError for a negative n."""
    return {"n": payload.n}


@job("t_hang", max_retries=0)
def t_hang(payload: dict, ctx: JobContext) -> dict:
    """Ignores ctx.cancelled. `mode`: `loop` (Python bytecode: an exception raised into the thread
    fires) or `block` (one blocking C call: the thread can only be abandoned)."""
    seconds = float(payload.get("seconds", 3600))
    if payload.get("mode") == "block":
        time.sleep(seconds)
    else:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.01)
    return {"slept": seconds}


@job("t_limited", time_limit="1s", max_retries=1, retry_base_delay=0.05)
def t_limited(payload: dict, ctx: JobContext) -> dict:
    """Declares a 1 s time limit and loops past it unless `seconds` is small."""
    deadline = time.monotonic() + float(payload.get("seconds", 3600))
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return {"done": True}


@job("t_async")
async def t_async(payload: dict, ctx: JobContext) -> dict:
    """An async handler: awaits `seconds`, reports progress, honours cancellation."""
    seconds = float(payload.get("seconds", 0.0))
    ctx.progress(10, "started")
    await asyncio.sleep(seconds)
    if payload.get("fail"):
        raise ValueError("async failure")
    return {"slept": seconds, "job": ctx.job_id}


@job("t_snooze", max_retries=0)
def t_snooze(payload: dict, ctx: JobContext) -> dict:
    """Snoozes `times` times (counting runs in ctx.attempt stays 1), then completes."""
    path = payload["marker"]
    try:
        with open(path, encoding="utf-8") as f:
            runs = int(f.read() or 0)
    except FileNotFoundError:
        runs = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(str(runs + 1))
    if runs < int(payload.get("times", 1)):
        raise Snooze(0.1)
    return {"runs": runs + 1, "attempt": ctx.attempt}


@job("t_retry", max_retries=1)
def t_retry(payload: dict, ctx: JobContext) -> dict:
    """Asks for a retry with its own delay on the first attempt."""
    if ctx.attempt == 1:
        raise Retry(float(payload.get("delay", 0.1)), "not yet")
    return {"attempt": ctx.attempt}
